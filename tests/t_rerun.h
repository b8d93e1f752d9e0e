/* The kernel tests' re-run: the CPU path is chosen once per process, so a test checks
 * another path by running itself again in a child under MESHLM_CPU=mode, with mode as its
 * one argument (tests use it to check only what the override changes). */
#ifndef MESHLM_TEST_T_RERUN_H
#define MESHLM_TEST_T_RERUN_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

static void t_rerun(const char *argv0, const char *mode) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MESHLM_CPU", mode, 1);
        execl(argv0, argv0, mode, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    CHECK_MSG(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "MESHLM_CPU=%s run failed (status %d)", mode, st);
}

#endif
