"""`crossmod litmus`: herd7's AArch64 litmus tests run on crossmod's arm64 machine."""
