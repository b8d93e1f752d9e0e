/* What `run` and `chat` share: their options (llama.cpp's names where they exist), loading
 * the model, starting MPI when asked or when launched by mpirun, and Ctrl-C. */
#ifndef MESHLM_APPS_RUN_OPTS_H
#define MESHLM_APPS_RUN_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "meshlm.h"

enum { MESHLM_RUN_MAX_STOPS = 16 };

typedef struct run_opts {
    const char *cmd; /* "run" or "chat", for messages */
    const char *model, *prompt, *prompt_file, *output, *system, *template_file;
    int64_t n_predict;
    meshlm_session_params sp;
    meshlm_batch_params bp;
    const char *stops[MESHLM_RUN_MAX_STOPS];
    int n_stops;
    bool batch;    /* --batch given: serve the lines of -f together */
    bool chat;     /* chat mode: `chat`, or `run -cnv` / `run -sys` */
    bool escape;   /* -e: \n, \t, \\, \xHH ... in the prompt and system text */
    bool special;  /* --special: show control tokens as text */
    bool quiet;    /* MPI ranks other than 0 print nothing but errors */
    bool prefetch; /* --prefetch: read the weights in ahead of compute (cold start) */
    bool expert_parallel; /* --expert-parallel: as --opt-set expert_parallel=on */
    char opt_set[1024];   /* the --opt-set list with the shorthands' items in front */
    bool mpi;      /* running as ranks of an MPI job */
    int rank;
} run_opts;

/* Parses argv (argv[0] is the subcommand) into o, whose defaults it sets. Returns 0 to go
 * on, 1 when --help or --version was answered (exit 0), 2 on a usage error (reported). */
int meshlm_run_parse(int argc, char **argv, const char *cmd, run_opts *o);

/* Starts MPI for --transport mpi, or when mpirun launched more than one rank and no
 * transport was named (one device per rank unless --mesh says otherwise); silences the
 * stdout of ranks other than 0. Returns 0, or an exit code after printing why. */
int meshlm_run_start_mpi(run_opts *o, int *argc, char ***argv);

/* Loads and prepares the model (or the synthetic default without -m), printing what it
 * loaded; NULL after printing why. */
meshlm_model *meshlm_run_load(const run_opts *o);

/* The process exit code of an interrupted run: the shell's for SIGINT. */
enum { MESHLM_EXIT_INTERRUPTED = 130 };

/* Ctrl-C: the first press sets a flag the generation loops poll (and interrupts a blocking
 * read); meshlm_run_interrupted reads it and meshlm_run_clear_interrupt re-arms it. */
void meshlm_run_catch_sigint(void);
bool meshlm_run_interrupted(void);
void meshlm_run_clear_interrupt(void);

/* The chat loop (`chat`, `run -cnv`); returns the exit code. */
int meshlm_chat_main(run_opts *o);

#endif
