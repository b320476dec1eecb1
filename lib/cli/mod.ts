/** The command line: argument parsing, configuration and the verbs. */

export { main } from "./main.ts";
