"""Rendering only: trails in columns, Perfetto traces, tables."""
