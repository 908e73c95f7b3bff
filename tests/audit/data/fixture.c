/*
 * A miniature kernel for crossmod audit tests: real asm-goto jump entries and static call
 * sites in each text region, keys in each class, and three sites that must fail to verify.
 * Built at test time by tests/audit/conftest.py; nothing here ever runs.
 * The asm mirrors arch/x86/include/asm/jump_label.h and static_call.h.
 */
struct static_key { int enabled; void *entries; };
struct tracepoint { const char *name; struct static_key key; void *funcs; };
struct static_call_key { void *func; void *sites; };

#define RO __attribute__((section(".data..ro_after_init")))
#define DATA __attribute__((section(".data")))
#define ENTRY __attribute__((section(".entry.text"), noinline))
#define NOINSTR __attribute__((section(".noinstr.text"), noinline))
#define CPUIDLE __attribute__((section(".cpuidle.text"), noinline))
#define TEXT __attribute__((noinline))
#define INLINE static inline __attribute__((always_inline))

const char linux_banner[] = "Linux version 6.99.0-crossmod-fixture (test@crossmod) #1 SMP\n";
/* kallsyms finds its token table by the digits; a real kernel has them in many names. */
int digits_0123456789 DATA = 1;

struct static_key ro_key RO = { 1, 0 };
struct static_key rw_key DATA = { 0, 0 };
struct static_key bss_key;
extern struct static_key ext_key;  /* defined in ext.c: external in the module build */
struct tracepoint __tracepoint_demo DATA = { "demo", { 0, 0 }, 0 };
struct static_call_key __SCK__rw_call DATA = { 0, 0 };
struct static_call_key __SCK__ro_call RO = { 0, 0 };
struct static_call_key __SCK__tp_func_demo DATA = { 0, 0 };
volatile int sink;

#define JUMP_ENTRY \
	".pushsection __jump_table, \"aw\"\n\t.balign 8\n\t" \
	".long 1b - .\n\t.long %l[l_yes] - .\n\t.quad %c0 + %c1 - .\n\t.popsection\n\t"
#define CALL_SITE(key, flags) \
	".pushsection .static_call_sites, \"a\"\n\t" \
	".long 1b - .\n\t.long " key " + " flags " - .\n\t.popsection\n\t"

/* As objtool leaves a CONFIG_HAVE_JUMP_LABEL_HACK site: a NOP, with bit 1 set in the key. */
INLINE int nop5(struct static_key *key)
{
	asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\n\t" JUMP_ENTRY
		 : : "i"(key), "i"(2) : : l_yes);
	return 0;
l_yes:
	return 1;
}

/* As the non-HACK arch_static_branch() emits it: NOP bytes, no flag. */
INLINE int nop2(struct static_key *key)
{
	asm goto("1: .byte 0x66,0x90\n\t" JUMP_ENTRY : : "i"(key), "i"(0) : : l_yes);
	return 0;
l_yes:
	return 1;
}

INLINE int jmp(struct static_key *key)
{
	asm goto("1: jmp %l[l_yes]\n\t" JUMP_ENTRY : : "i"(key), "i"(1) : : l_yes);
	return 0;
l_yes:
	return 1;
}

/* Fails verification: five INT3s are neither a NOP nor a JMP. */
INLINE int int3s(struct static_key *key)
{
	asm goto("1: .byte 0xcc,0xcc,0xcc,0xcc,0xcc\n\t" JUMP_ENTRY : : "i"(key), "i"(0) : : l_yes);
	return 0;
l_yes:
	return 1;
}

/* Fails verification: the JMP lands just after itself, not on the entry's target. */
INLINE int wrong_jmp(struct static_key *key)
{
	asm goto("1: jmp 2f\n\t2:\n\t" JUMP_ENTRY : : "i"(key), "i"(1) : : l_yes);
	return 0;
l_yes:
	return 1;
}

ENTRY void entry_fn(void)
{
	if (nop5(&rw_key))
		sink = 1;
	if (nop2(&ro_key))
		sink = 2;
	asm volatile("1: call __SCT__rw_call\n\t" CALL_SITE("__SCK__rw_call", "0"));
	asm volatile("1: jmp __SCT__ro_call\n\t" CALL_SITE("__SCK__ro_call", "1"));
}

NOINSTR void noinstr_fn(void)
{
	if (jmp(&bss_key))
		sink = 3;
	if (nop5(&__tracepoint_demo.key))
		sink = 4;
	if (nop2(&ext_key))
		sink = 5;
	asm volatile("1: call __SCT__tp_func_demo\n\t" CALL_SITE("__SCK__tp_func_demo", "0"));
}

CPUIDLE void idle_fn(void)
{
	if (nop5(&rw_key))
		sink = 6;
}

TEXT void text_fn(void)
{
	if (nop5(&rw_key))
		sink = 7;
	if (int3s(&rw_key))
		sink = 8;
	if (wrong_jmp(&ro_key))
		sink = 9;
	/* Fails verification: calls the other call's trampoline. */
	asm volatile("1: call __SCT__ro_call\n\t" CALL_SITE("__SCK__rw_call", "0"));
}

/* Trampolines, as arch/x86/include/asm/static_call.h lays them out (JMP.d32 + int3). */
asm(".pushsection .text\n"
    ".globl __SCT__rw_call\n__SCT__rw_call: jmp text_fn\n\tint3\n\t.balign 8\n"
    ".globl __SCT__ro_call\n__SCT__ro_call: jmp text_fn\n\tint3\n\t.balign 8\n"
    ".globl __SCT__tp_func_demo\n__SCT__tp_func_demo: jmp text_fn\n\tint3\n\t.balign 8\n"
    ".popsection\n");
