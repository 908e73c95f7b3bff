"""Stack signatures: the two frames of a stack that tell why an IPI was sent.

Owns: the landmark table (kernel functions that name a cause, e.g. ``sk_attach_filter``
or ``__static_call_update``, with a short label) and `signature`, which keeps the
stack below the first interrupt-entry frame (what sits past it is the *interrupted*
code, not the cause), finds the landmarks and returns ``"outermost → next inward"``,
e.g. ``"tracepoint enable → static_call update"``. A stack without landmarks falls
back to its innermost frames that are not IPI or tracing machinery.

Data, not logic: extend `LANDMARKS` when a new cause shows up unnamed in a report.

May import: the standard library only.
"""

from __future__ import annotations

# frame name -> label; the first label found walking outwards wins per frame
LANDMARKS: dict[str, str] = {
    # origins: what the sending task was doing
    "sk_attach_filter": "sk_attach_filter",
    "sk_attach_bpf": "sk_attach_bpf",
    "bpf_prog_load": "bpf_prog_load",
    "tracepoint_add_func": "tracepoint enable",
    "tracepoint_probe_register": "tracepoint enable",
    "tracepoint_probe_unregister": "tracepoint disable",
    "enable_kprobe": "kprobe enable",
    "arm_kprobe": "kprobe enable",
    "register_kprobe": "kprobe register",
    "disable_kprobe": "kprobe disable",
    "__disable_kprobe": "kprobe disable",
    "unregister_kprobe": "kprobe unregister",
    "load_module": "module load",
    "do_init_module": "module load",
    "__do_sys_delete_module": "module unload",
    "do_free_init": "module init free",
    "drain_vmap_area_work": "vmap drain work",
    "dl_task_timer": "dl_task_timer",
    "wait_rcu_exp_gp": "expedited RCU",
    "sync_rcu_exp_select_cpus": "expedited RCU",
    "pcpu_balance_workfn": "pcpu_balance_work",
    "vfree": "vfree",
    "vfree.part.0": "vfree",
    # mechanisms: what sends the IPI
    "bpf_prog_select_runtime": "bpf_prog_select_runtime",
    "__static_call_update": "static_call update",
    "__static_call_init": "static_call update",
    "arch_static_call_transform": "static_call update",
    "arch_jump_label_transform_apply": "static key update",
    "static_key_enable_cpuslocked": "static key update",
    "static_key_disable_cpuslocked": "static key update",
    "ftrace_modify_all_code": "ftrace code update",
    "ftrace_update_ftrace_func": "ftrace code update",
    "arch_ftrace_update_trampoline": "ftrace code update",
    "set_memory_ro": "set_memory_*",
    "set_memory_rox": "set_memory_*",
    "set_memory_nx": "set_memory_*",
    "set_memory_x": "set_memory_*",
    "flush_tlb_kernel_range": "kernel TLB flush",
    "__purge_vmap_area_lazy": "vmap purge",
    "tick_nohz_dep_set_cpu": "tick_nohz_dep_set_cpu",
    "text_poke_bp_batch": "text_poke",
    "smp_text_poke_batch_finish": "text_poke",
    "membarrier_private_expedited": "membarrier",
}

# Frames that say how the IPI was sent or recorded, never why.
_MACHINERY_PREFIXES = (
    "trace_event_raw_event_", "perf_trace_", "trace_", "smp_call_function", "on_each_cpu",
    "__smp_call_single_queue", "generic_exec_single", "irq_work_queue", "__irq_work_queue",
    "native_send_call_func", "send_call_function", "native_smp_send_reschedule",
    "arch_send_call_function", "__send_ipi", "smp_send_reschedule", "stack_trace_save",
    "__ftrace_trace_stack", "ftrace_trace_stack", "__trace_stack",
)
# Frames every kernel path has at its bottom.
_BOILERPLATE = frozenset((
    "do_syscall_64", "entry_SYSCALL_64_after_hwframe", "x64_sys_call", "ret_from_fork",
    "ret_from_fork_asm", "kthread", "worker_thread", "process_one_work", "common_startup_64",
    "start_secondary", "cpu_startup_entry", "do_idle", "ksys_write", "vfs_write",
))
_IRQ_ENTRY_PREFIXES = ("asm_sysvec_", "asm_common_interrupt", "asm_exc_")


def _cut_interrupted(stack: tuple[str, ...]) -> tuple[str, ...]:
    for i, f in enumerate(stack):
        if f.startswith(_IRQ_ENTRY_PREFIXES):
            return stack[:i]
    return stack


_CACHE: dict[tuple[str, ...], str] = {}


def signature(stack: tuple[str, ...] | None) -> str:
    """``"outer → inner"`` label for a stack (innermost frame first), or ``"(no stack)"``."""
    if not stack:
        return "(no stack)"
    hit = _CACHE.get(stack)
    if hit is None:
        hit = _signature(stack)
        if len(_CACHE) < 1 << 14:
            _CACHE[stack] = hit
    return hit


def _signature(stack: tuple[str, ...]) -> str:
    frames = _cut_interrupted(stack)
    labels: list[str] = []
    for f in frames:
        label = LANDMARKS.get(f)
        if label and label not in labels:
            labels.append(label)
    if labels:
        outer = labels[-1]
        inner = labels[-2] if len(labels) > 1 else None
        return f"{outer} → {inner}" if inner else outer
    useful = [f for f in frames if not f.startswith(_MACHINERY_PREFIXES)
              and f not in _BOILERPLATE and not f.startswith(("__x64_sys_", "__sysvec_",
                                                               "sysvec_"))]
    if not useful:
        return frames[-1] if frames else stack[0]
    return " → ".join(reversed(useful[:2]))
