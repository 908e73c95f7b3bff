"""`crossmod audit` from the command line: exit codes, one-line errors, --json, --allow,
--allow-file, the 100-column table and --help."""

from __future__ import annotations

import json

from click.testing import CliRunner

from crossmod.cli import main

from . import builder


def run(*args: str):
    return CliRunner().invoke(main, ["audit", *args])


def test_hazards_exit_1_and_table_fits_100_columns(fx):
    result = run(str(fx.vmlinux))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any(line.startswith("hazards (writable key") and "7 (2 tracepoint, 0 allowed, "
               "5 failing)" in line for line in lines)
    table = [line for line in lines if line.startswith("ffffffff81")]
    assert len(table) == 7 + 3  # hazard rows + unverified rows


def test_json_has_the_same_data(fx):
    result = run(str(fx.vmlinux), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["counts"]["total"] == 13
    assert doc["counts"]["hazards"] == len(doc["hazards"]) == 7
    assert len(doc["unverified"]) == 3
    row = next(h for h in doc["hazards"] if (h["region"], h["key"]) == ("entry", "rw_key"))
    assert row == {
        "kind": "jump", "address": row["address"], "function": "entry_fn", "region": "entry",
        "instruction": "nop5", "key": "rw_key", "key_address": row["key_address"],
        "key_section": ".data", "key_ro_after_init": False, "tracepoint": False,
        "flags": ["objtool_nop"], "verified": True, "problem": None, "allowed": False,
    }
    assert doc["exit_code"] == 1


def test_allow_and_allow_file_reach_exit_0(fx, tmp_path):
    allow = tmp_path / "allow.txt"
    allow.write_text("# keys flipped only with IPIs to every CPU\nbss_key\n\next_key  # why\n")
    result = run(str(fx.vmlinux), "--allow", "rw_key", "--allow", "__SCK__rw_call",
                 "--allow-file", str(allow))
    assert result.exit_code == 0, result.output
    strict = run(str(fx.vmlinux), "--allow", "rw_key", "--allow", "rw_call",
                 "--allow-file", str(allow), "--tracepoints")
    assert strict.exit_code == 1


def _one_line_error(result) -> str:
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crossmod audit: error: ")
    return lines[0]


def test_bad_inputs_exit_2_with_one_line(fx, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 100)
    assert "not an ELF file" in _one_line_error(run(str(junk)))
    assert "No such file" in _one_line_error(run(str(tmp_path / "missing")))
    cut = tmp_path / "vmlinuz"
    cut.write_bytes(builder.bzimage_of(fx.vmlinux.read_bytes(), "zstd")[:2000])
    line = _one_line_error(run(str(cut)))
    assert str(cut) in line and "truncated" in line
    assert "give --symbols" in _one_line_error(run(str(fx.nosyms)))
    assert "allow.txt" in _one_line_error(run(str(fx.vmlinux), "--allow-file",
                                              str(tmp_path / "allow.txt")))


def test_mismatched_symbols_exit_2(fx, tmp_path):
    # A uniform page shift is a KASLR slide and is undone; a moved symbol is a mismatch.
    smap = tmp_path / "System.map"
    smap.write_text(builder.system_map([(a + (8 if n == "linux_banner" else 0), k, n)
                                        for a, k, n in fx.symbols]))
    assert "do not match the image" in _one_line_error(
        run(str(fx.nosyms), "--symbols", str(smap)))


def test_region_entry_only(fx):
    """v8 narrows the check to .entry.text: only entry_fn's two writable sites remain."""
    result = run(str(fx.vmlinux), "--region", "entry", "--json")
    doc = json.loads(result.output)
    assert result.exit_code == 1
    assert doc["checked_regions"] == ["entry"]
    assert sorted(h["key"] for h in doc["hazards"]) == ["__SCK__rw_call", "rw_key"]
    assert run(str(fx.vmlinux), "--region", "entry", "--allow", "rw_key",
               "--allow", "rw_call").exit_code == 0
    assert run(str(fx.vmlinux), "--region", "bogus").exit_code == 2


def test_help():
    result = run("--help")
    assert result.exit_code == 0
    for flag in ("--symbols", "--json", "--allow", "--allow-file", "--region", "--tracepoints"):
        assert flag in result.output


def test_allow_file_that_is_not_utf8_names_its_line(fx, tmp_path):
    (tmp_path / "allow.txt").write_bytes(b"rw_key\n# a comment\n\xff\xfe key\n")
    result = run(str(fx.vmlinux), "--allow-file", str(tmp_path / "allow.txt"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"crossmod audit: error: {tmp_path / 'allow.txt'}: --allow-file "
                             "line 3: byte 0xff is not UTF-8 (a key list is plain text)\n")


def test_full_standard_output_is_exit_2_with_one_line(fx):
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "crossmod", "audit", str(fx.vmlinux)],
                           stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert (r.returncode, r.stderr) == (
        2, "crossmod: error: cannot write standard output: No space left on device\n")
