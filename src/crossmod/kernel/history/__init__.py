"""Dated historic protocols (2010 text_poke_fixup, 2019 cpumask sync) kept for the catalogue."""
