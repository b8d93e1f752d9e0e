/* The meshlm command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "apps/commands.h"
#include "meshlm.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"run", meshlm_cmd_run, "generate text from a prompt (or serve many: --batch)"},
    {"chat", meshlm_cmd_chat, "a conversation with an instruct model, in its chat template"},
    {"info", meshlm_cmd_info, "print a model's architecture, tokenizer and tensors"},
    {"tokenize", meshlm_cmd_tokenize, "print the token ids of a text"},
    {"template", meshlm_cmd_template, "render a chat template with a JSON conversation from stdin"},
    {"synth", meshlm_cmd_synth, "write a model with random weights, any shape"},
    {"bench", meshlm_cmd_bench, "time prefill and decode (llama-bench style) against the machine's limits"},
    {"bench-ccl", meshlm_cmd_bench_ccl, "time the collectives over a size sweep (nccl-tests style)"},
    {"serve", meshlm_cmd_serve, "an OpenAI-compatible HTTP server (chat and completions)"},
    {"bench-serve", meshlm_cmd_bench_serve,
     "drive an OpenAI-compatible server with concurrent streams and time it (vllm bench serve style)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: meshlm COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'meshlm COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("meshlm %s\n", meshlm_version());
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "meshlm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
