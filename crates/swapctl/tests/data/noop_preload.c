/* A preload library that does nothing: run_cli.rs builds it with `cc -shared` and hands it
 * to `swapctl run` as $SWAPKIT_PRELOAD, so the exec and the environment the program gets
 * are tested without the real library. */
__attribute__((constructor)) static void swapkit_noop_preload(void) {}
