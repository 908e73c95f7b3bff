/* A key defined outside fixture.c, so the module build of fixture.c sees it as external. */
struct static_key { int enabled; void *entries; };
struct static_key ext_key __attribute__((section(".data"))) = { 0, 0 };
