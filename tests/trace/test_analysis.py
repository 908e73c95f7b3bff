"""The analysis on hand-built event lists (a mock reader): attribution, modes, phases,
handler time, the classification table, stack signatures."""

from __future__ import annotations

import pytest

from crossmod.trace import report
from crossmod.trace.analyze import OUTSIDE, Analysis, Histogram
from crossmod.trace.causes import signature
from crossmod.trace.events import Event, TraceFormatError
from crossmod.trace.whatif import Classifier

from .conftest import need_compiled

GEN = "generic_smp_call_function_single_interrupt+0x0"


def ev(ts: int, on: int, name: str, comm: str = "sh", **fields: object) -> Event:
    return Event(ts, on, 1, comm, name, dict(fields))


def queue(ts: int, sender: int, target: int, func: str, callsite: str = "cs+0x1") -> Event:
    return ev(ts, sender, "csd_queue_cpu", cpu=target, callsite=callsite, func=func, csd=1)


def send_mask(ts: int, sender: int, mask: tuple[int, ...], callsite: str = "cs+0x1") -> Event:
    return ev(ts, sender, "ipi_send_cpumask", cpumask=mask, callsite=callsite, callback=GEN)


def _cpu(events: list[Event], cpu: str = "2", **kw: object) -> dict:
    a = Analysis((2, 3), **kw).run(events)  # type: ignore[arg-type]
    return report.build(a, sources=[], by_phase=True)["cpus"][cpu]


def test_csd_queue_names_the_ipi_by_callsite_even_when_interrupted() -> None:
    """CPU 0 queues do_sync_core for 2 and 3; before its send, an interrupt on CPU 0
    queues and sends a nohz kick to 2 from another callsite. Each send takes its own."""
    events = [
        queue(10, 0, 2, "do_sync_core"), queue(11, 0, 3, "do_sync_core"),
        queue(12, 0, 2, "nohz_full_kick_func", "irq_work_queue_on+0x5b"),
        ev(13, 0, "ipi_send_cpu", cpu=2, callsite="irq_work_queue_on+0x5b", callback=GEN),
        send_mask(14, 0, (1, 2, 3)),
    ]
    cpu2, cpu3 = _cpu(events), _cpu(events, "3")
    assert cpu2["by_callback"] == [["do_sync_core", 1], ["nohz_full_kick_func", 1]]
    assert cpu3["by_callback"] == [["do_sync_core", 1]]
    assert cpu2["by_callsite"] == [["cs+0x1", 1], ["irq_work_queue_on+0x5b", 1]]
    assert cpu2["by_sender_cpu"] == [["0", 2]]


def test_piggybacked_csd_gets_no_ipi_and_reschedule_is_named() -> None:
    events = [
        queue(10, 0, 2, "do_flush_tlb_all"),
        send_mask(11, 0, (3,)),  # CPU 2's queue was not empty: no IPI for it
        ev(12, 1, "ipi_send_cpu", cpu=2, callsite="resched_cpu+0x6d", callback="0x0"),
        ev(13, 2, "ipi_send_cpu", cpu=2, callsite="irq_work_queue+0x2f",
           callback="rb_wake_up_waiters+0x0"),
        send_mask(14, 0, (2,), "other+0x2"),  # a csd IPI whose csd_queue was not traced
    ]
    cpu2 = _cpu(events)
    assert cpu2["aimed"] == 3
    assert dict(cpu2["by_callback"]) == {"reschedule": 1, "rb_wake_up_waiters": 1,
                                         "(csd not traced)": 1}
    assert cpu2["callbacks_queued"] == [["do_flush_tlb_all", 1]]
    assert _cpu(events, "3")["by_callback"] == [["(csd not traced)", 1]]


def test_mode_aware_whatif() -> None:
    events = [
        queue(5, 0, 2, "do_sync_core"), send_mask(6, 0, (2,)),  # mode unknown yet
        ev(10, 2, "user_enter"),
        queue(20, 0, 2, "do_sync_core"), send_mask(21, 0, (2,)),  # user: removable
        ev(30, 2, "user_exit"),
        queue(40, 0, 2, "do_kernel_range_flush"), send_mask(41, 0, (2,)),  # kernel: stays
        queue(50, 0, 2, "flush_tlb_func"), send_mask(51, 0, (2,)),  # never deferrable
        ev(60, 2, "user_enter"),
        queue(70, 0, 2, "do_sync_core"), queue(71, 0, 2, "nohz_full_kick_func"),
        send_mask(72, 0, (2,)),  # one IPI, one non-deferrable callback: stays
    ]
    wi = _cpu(events)["whatif"]
    assert (wi["today"], wi["removable"], wi["with_deferral"]) == (5, 1, 4)
    assert wi["deferrable_but_target_in_kernel"] == 1
    assert wi["deferrable_but_target_mode_unknown"] == 1
    assert dict(wi["remaining_causes"]) == {"do_sync_core": 1, "do_kernel_range_flush": 1,
                                            "flush_tlb_func": 1,
                                            "do_sync_core+nohz_full_kick_func": 1}


def test_whatif_assumes_userspace_without_context_tracking() -> None:
    events = [queue(5, 0, 2, "do_sync_core"), send_mask(6, 0, (2,))]
    assert _cpu(events)["whatif"]["removable"] == 1


def test_phases_and_handler_time() -> None:
    events = [
        ev(1, 0, "print", buf="PHASE a start"),
        queue(2, 0, 2, "do_sync_core"), send_mask(3, 0, (2,)),
        ev(4, 2, "call_function_entry", vector=252),
        ev(5, 2, "csd_function_entry", func="do_sync_core", csd=1),
        ev(25, 2, "csd_function_exit", func="do_sync_core", csd=1),
        ev(30, 2, "call_function_exit", vector=252),
        ev(40, 0, "print", buf="PHASE a end"),
        ev(41, 0, "print", buf="not a phase marker"),
        queue(50, 0, 2, "do_sync_core"), send_mask(51, 0, (2,)),
        ev(52, 2, "reschedule_entry", vector=253),
        ev(53, 2, "local_timer_entry", vector=236),
    ]
    cpu2 = _cpu(events)
    assert {p: d["aimed"] for p, d in cpu2["by_phase"].items()} == {"(no phase)": 1, "a": 1}
    assert cpu2["by_phase"]["a"]["handled"] == 1
    assert cpu2["handled"] == 2 and cpu2["handled_by_vector"]["local_timer_entry"] == 1
    assert cpu2["handler_time"] == [
        {"handler": "call_function (vector)", "n": 1, "total_ns": 26, "mean_ns": 26,
         "max_ns": 26},
        {"handler": "do_sync_core", "n": 1, "total_ns": 20, "mean_ns": 20, "max_ns": 20}]


def test_classify_file_extends_and_overrides() -> None:
    cls = Classifier()
    cls.load("# ours\nftrace_sync_ipi deferrable orders kernel text only\n"
             "do_flush_tlb_all not   be conservative\n", "extra.txt")
    assert cls.kind("ftrace_sync_ipi") == "deferrable"
    assert cls.kind("do_flush_tlb_all") == "not"
    assert cls.reason("ftrace_sync_ipi") == "orders kernel text only"
    with pytest.raises(TraceFormatError, match=r"extra.txt:2: expected 'callback deferrable"):
        cls.load("ok deferrable\nbroken maybe\n", "extra.txt")
    events = [queue(5, 0, 2, "ftrace_sync_ipi"), send_mask(6, 0, (2,))]
    assert _cpu(events, classifier=cls)["whatif"]["removable"] == 1
    assert _cpu(events)["whatif"]["removable"] == 0


def test_stack_signatures() -> None:
    bpf = ("trace_event_raw_event_csd_queue_cpu", "smp_call_function_many_cond",
           "on_each_cpu_cond_mask", "change_page_attr_set_clr", "set_memory_ro",
           "bpf_prog_select_runtime", "bpf_prepare_filter", "sk_attach_filter",
           "do_syscall_64")
    assert signature(bpf) == "sk_attach_filter → bpf_prog_select_runtime"
    tp = ("smp_call_function_many_cond", "on_each_cpu_cond_mask", "text_poke_bp_batch",
          "__static_call_update", "tracepoint_add_func", "tracepoint_probe_register")
    assert signature(tp) == "tracepoint enable → static_call update"
    # what an interrupt interrupted is not the cause
    kick = ("irq_work_queue_on", "tick_nohz_dep_set_cpu", "dl_task_timer",
            "asm_sysvec_apic_timer_interrupt", "sk_attach_filter")
    assert signature(kick) == "dl_task_timer → tick_nohz_dep_set_cpu"
    assert signature(("smp_call_function_single", "foo", "bar", "kthread")) == "bar → foo"
    assert signature(None) == "(no stack)"


def test_histogram_doubles_its_bins() -> None:
    h = Histogram(0, width=10, max_bins=4)
    for ts in (0, 15, 35, 39):
        h.add(ts)
    assert (h.width, h.bins) == (10, [1, 1, 0, 2])
    h.add(45)
    assert (h.width, h.bins) == (20, [2, 2, 1])
    assert report.summary(10, 2, 60 * 10**9) == (
        "10 IPIs received, about 5 per isolated CPU, one every 12.0 s")
    assert report.duration(95e9) == "1 min 35 s"


def test_run_reads_batches_and_plain_iterables_alike() -> None:
    """`Analysis.run` takes the readers' lists of events (``batches()``) or any iterable
    of events, with the same result, and leaves the GC threshold as it found it."""
    import gc

    from crossmod.trace.source import merged

    events = [
        ev(5, 0, "print", buf="PHASE p1 start"), ev(6, 2, "user_enter"),
        queue(10, 0, 2, "do_sync_core"), queue(11, 0, 3, "do_sync_core"),
        send_mask(12, 0, (2, 3)), ev(13, 2, "call_function_entry", vector=252),
        ev(14, 2, "csd_function_entry", func="do_sync_core", csd=1),
        ev(15, 2, "csd_function_exit", func="do_sync_core", csd=1),
        ev(16, 0, "sched_waking"), ev(17, 0, "print", buf="PHASE p1 end"),
        ev(18, 3, "user_exit"),
    ]

    class Batched:  # a reader that hands its events over in lists
        path, problems, problem_count, errors, lost_events = "x", [], 0, [], 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(events)

        def batches(self):  # type: ignore[no-untyped-def]
            return iter([events[:3], [], events[3:7], events[7:]])

    class Plain(Batched):  # and one that does not
        batches = None  # type: ignore[assignment]

    threshold = gc.get_threshold()
    results = [Analysis((2, 3)).run(src)  # type: ignore[arg-type]
               for src in (events, iter(events), merged([Batched()]), merged([Plain()]))]
    assert gc.get_threshold() == threshold
    for a in results:
        assert (a.events, a.c, a.handler, a.phases, a.mode, a.context_tracking) == (
            results[0].events, results[0].c, results[0].handler, results[0].phases,
            results[0].mode, True)
        assert (a.first_ts, a.last_ts) == (5, 18)
    assert results[0].events[("sched_waking", 0, "p1")] == 1
    assert results[0].events[("user_exit", 3, OUTSIDE)] == 1
    assert sum(n for (_t, table, _k, _p), n in results[0].c.items() if table == "ipi") == 2


def test_compiled_counting_equals_the_reference(dat_events: list[Event],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`Analysis` counts events with `_scan.count_upto` when it is built and with
    `_count_upto_py` otherwise: on the shared recording (in batches cut at odd places, so
    phase markers fall inside and at the edges of batches) both give the same report."""
    import crossmod.trace.analyze as analyze

    class Batched:
        def __init__(self, sizes: tuple[int, ...]) -> None:
            self.sizes = sizes

        def batches(self):  # type: ignore[no-untyped-def]
            i, k = 0, 0
            while i < len(dat_events):
                n = self.sizes[k % len(self.sizes)]
                yield dat_events[i : i + n]
                i, k = i + n, k + 1

    def run(sizes: tuple[int, ...]) -> dict:
        a = Analysis((2, 3)).run(Batched(sizes))  # type: ignore[arg-type]
        return report.build(a, sources=[], by_phase=True) | {"events": a.events}

    monkeypatch.setattr(analyze, "_scan", need_compiled())
    compiled = [run(s) for s in ((4096,), (1, 7, 1000), (len(dat_events),))]
    monkeypatch.setattr(analyze, "_scan", None)
    pure = run((3, 4096, 1))
    assert all(c == pure for c in compiled)
    assert sum(pure["events"].values()) == len(dat_events)
    assert len({p for (_n, _c, p) in pure["events"]}) > 3  # the phases are in play


def test_counting_takes_any_object_with_name_and_cpu() -> None:
    """The compiled count reads an `Event`'s slots directly and anything else through its
    attributes, as the reference does; both stop after a phase marker."""
    from types import SimpleNamespace

    import crossmod.trace.analyze as analyze

    batch = [SimpleNamespace(name="x", cpu=1), ev(1, 0, "print", buf="PHASE p start"),
             SimpleNamespace(name="y", cpu=2)]
    for count in (analyze._count_upto_py, need_compiled().count_upto):
        counts: dict[str, list[int]] = {}
        kind: dict[str, int] = {"print": 9}
        assert count(batch, 0, counts, kind, 2) == 2  # type: ignore[arg-type]
        assert count(batch, 2, counts, kind, 2) == 3  # type: ignore[arg-type]
        assert counts == {"x": [0, 1], "print": [1], "y": [0, 0, 1]}
        assert kind == {"print": 9, "x": 2, "y": 2}
