/* The meshlm command's subcommands; each parses its own arguments (argv[0] is the
 * subcommand name) and returns the process exit code. */
#ifndef MESHLM_APPS_COMMANDS_H
#define MESHLM_APPS_COMMANDS_H

int meshlm_cmd_run(int argc, char **argv);
int meshlm_cmd_chat(int argc, char **argv);
int meshlm_cmd_info(int argc, char **argv);
int meshlm_cmd_tokenize(int argc, char **argv);
int meshlm_cmd_template(int argc, char **argv);
int meshlm_cmd_synth(int argc, char **argv);
int meshlm_cmd_bench_ccl(int argc, char **argv);
int meshlm_cmd_bench(int argc, char **argv);
int meshlm_cmd_serve(int argc, char **argv);
int meshlm_cmd_bench_serve(int argc, char **argv);

#endif
