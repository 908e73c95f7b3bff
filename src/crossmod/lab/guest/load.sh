#!/bin/sh
# The housekeeping load, phase by phase (follows the shared capture's guest/load.sh).
# Each phase is marked in the trace ("PHASE <name> start" / "end" in trace_marker); a phase
# this kernel cannot run is skipped and said in $OUT/skipped.txt. The order of the
# tracepoints and modules, the socket count and hackbench's size are the host's plan for
# the seed (lab.conf), so one seed gives one workload.
OUT=${1:-/tmp}
. /etc/crossmod/lab.conf
T=/sys/kernel/tracing
F=$T/instances/flip/events
say() { echo "crossmod-lab: $*"; }
mark() { echo "PHASE $*" > $T/trace_marker; }
up() { cut -d. -f1 /proc/uptime; }
deadline() { echo $(( $(up) + SECONDS_PER_PHASE )); }
skip() { say "phase $1 skipped: $2"; echo "$1 $2" >> $OUT/skipped.txt; }

# what a phase got done, for the host: "<phase> <unit> <n>" lines in $OUT/work.txt
work() { echo "$P $1 $2" >> $OUT/work.txt; }

bpf_phase() {
  r=$(/bin/bpfload $SECONDS_PER_PHASE $BPF_NSOCK)
  say "$r"
  work bpf_rounds "$(echo "$r" | sed -n 's/.* in \([0-9]*\) rounds.*/\1/p')"
}

tp_phase() {
  end=$(deadline); n=0
  while [ $(up) -lt $end ]; do
    for ev in $TP_EVENTS; do
      echo 1 > $F/$ev/enable; echo 0 > $F/$ev/enable; n=$((n+1))
    done
  done
  say "tracepoint toggles: $n"; work tracepoint_toggles $n
}

kprobe_phase() {
  end=$(deadline); n=0
  while [ $(up) -lt $end ]; do
    echo 'p:kp_crossmod vfs_read' >> $T/kprobe_events
    echo 'r:kr_crossmod do_sys_openat2' >> $T/kprobe_events
    echo 1 > $F/kprobes/kp_crossmod/enable; echo 1 > $F/kprobes/kr_crossmod/enable
    sleep 0.2
    echo 0 > $F/kprobes/kp_crossmod/enable; echo 0 > $F/kprobes/kr_crossmod/enable
    echo '-:kp_crossmod' >> $T/kprobe_events; echo '-:kr_crossmod' >> $T/kprobe_events
    n=$((n+1))
  done
  say "kprobe cycles: $n"; work kprobe_cycles $n
}

module_phase() {
  end=$(deadline); n=0
  while [ $(up) -lt $end ]; do
    for m in $MODULES; do insmod /lib/modules/$m.ko && rmmod $m; done
    n=$((n+1))
  done
  say "module load/unload cycles: $n"; work module_cycles $n
}

hackbench_phase() {
  end=$(deadline); n=0
  while [ $(up) -lt $end ]; do
    hackbench -g $HB_GROUPS -f 10 -l $HB_LOOPS >/dev/null 2>&1; n=$((n+1))
  done
  say "hackbench runs: $n"; work hackbench_runs $n
}

# why this kernel/guest cannot run a phase (empty: it can)
lacks() {
  case $1 in
    bpf_jit|bpf_nojit|mixed)
      [ -w /proc/sys/net/core/bpf_jit_enable ] || { echo "no /proc/sys/net/core/bpf_jit_enable"; return; } ;;
  esac
  case $1 in
    bpf_nojit)
      echo 0 > /proc/sys/net/core/bpf_jit_enable 2>/dev/null
      [ "$(cat /proc/sys/net/core/bpf_jit_enable)" = 0 ] || echo "the JIT cannot be turned off (CONFIG_BPF_JIT_ALWAYS_ON)"
      echo 1 > /proc/sys/net/core/bpf_jit_enable 2>/dev/null ;;
    kprobe)
      [ -e $T/kprobe_events ] || echo "no kprobe_events (CONFIG_KPROBE_EVENTS)" ;;
    module|mixed)
      for m in $MODULES; do [ -e /lib/modules/$m.ko ] || { echo "no $m.ko (kernel given without its package's modules)"; return; }; done ;;
  esac
  case $1 in
    hackbench|mixed) command -v hackbench >/dev/null || echo "no hackbench (host lacks rt-tests)" ;;
    tracepoint|mixed) [ -d $F/sched ] || echo "no tracefs instance events" ;;
  esac
}

: > $OUT/work.txt
for p in $PHASES; do
  P=$p
  why=$(lacks $p)
  if [ -n "$why" ]; then skip $p "$why"; continue; fi
  say "phase $p start"
  mark "$p start"
  case $p in
    bpf_jit) echo 1 > /proc/sys/net/core/bpf_jit_enable; bpf_phase ;;
    bpf_nojit) echo 0 > /proc/sys/net/core/bpf_jit_enable; bpf_phase ;;
    tracepoint) tp_phase ;;
    kprobe) kprobe_phase ;;
    module) module_phase ;;
    hackbench) hackbench_phase ;;
    mixed)
      echo 1 > /proc/sys/net/core/bpf_jit_enable
      bpf_phase & B=$!
      tp_phase & TP=$!
      module_phase & M=$!
      hackbench_phase & H=$!
      wait $B $TP $M $H ;;
  esac
  mark "$p end"
  say "phase $p end"
  echo 1 > /proc/sys/net/core/bpf_jit_enable 2>/dev/null
  sleep 1
done
