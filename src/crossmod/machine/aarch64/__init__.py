"""The arm64 machine at the instruction level: memory events performed out of program order.

Owns: the events one arm64 thread's instructions make (events.py), the order the
architecture keeps among them -- locally-ordered-before, Arm's `aarch64hwreqs.cat` (order.py)
-- and the machine that performs them one at a time against a flat memory with an
instruction side that may lag behind it (machine.py). Imports: stdlib only.

This is the arm64 side of crossmod's machine for code that is written as instructions (the
litmus tests of `crossmod litmus`); the kernel routines of `crossmod check` keep running on
`machine.machine.Machine`, whose arm64 rule (a CPU executes any value a word held since its
last context synchronization event, data memory sequentially consistent) is the coarser
reading this package refines. Nothing here changes that machine.

The semantics is Arm's own model of instruction fetch (Simner et al., "ARMv8-A system
semantics: instruction fetch in relaxed architectures", ESOP 2020), as herd7 runs it with
`-variant ifetch` over `herd/libdir/aarch64.cat`: an execution is allowed when its
ordered-before relation is acyclic, and a machine that performs every event in some order
that extends ordered-before -- each read taking the value memory holds at that instant (or
its own thread's unperformed po-earlier write), each instruction fetch any value the
instruction side still offers -- reaches exactly the allowed executions.
"""
