"""Reading YAML: limits first, clear errors, line numbers kept."""

from __future__ import annotations

from pathlib import Path

from agent_lib.config import load_paths, load_text
from agent_lib.config.documents import MAX_DEPTH


def test_multi_document_files_keep_lines() -> None:
    result = load_text("a: 1\n---\nb:\n  c: 2\n", "f.yaml")
    assert result.problems == []
    assert [d.data for d in result.documents] == [{"a": 1}, {"b": {"c": 2}}]
    assert result.documents[1].line_of(("b", "c")) == 4
    assert result.documents[1].line_of(("b", "missing")) == 3


def test_billion_laughs_is_refused() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    result = load_text("\n".join(lines))
    assert result.documents == []
    assert "alias bomb" in result.problems[0].reason


def test_deep_nesting_is_refused() -> None:
    result = load_text("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))
    assert result.documents == []
    assert "nested too deeply" in result.problems[0].reason


def test_very_deep_nesting_does_not_crash() -> None:
    result = load_text("[" * 50_000 + "]" * 50_000)
    assert result.documents == []
    assert "nested too deeply" in result.problems[0].reason


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * (10 * 1024 * 1024) + b"\n")
    result = load_paths([big])
    assert result.documents == []
    assert "10.5 MB; the limit is 1 MiB" in result.problems[0].reason


def test_binary_and_non_utf8_are_refused() -> None:
    assert "binary" in load_text(b"\x00\x01\x02garbage").problems[0].reason
    assert "not UTF-8" in load_text(b"a: \xff\xfe").problems[0].reason


def test_syntax_errors_name_the_line() -> None:
    result = load_text("a: 1\nb: [unclosed\n", "broken.yaml")
    problem = result.problems[0]
    assert problem.file == "broken.yaml" and problem.line >= 2
    assert "invalid YAML" in problem.reason


def test_unsafe_tags_are_refused() -> None:
    result = load_text("a: !!python/object/apply:os.system ['true']\n")
    assert result.documents == []
    assert "invalid YAML" in result.problems[0].reason


def test_folders_are_read_recursively_and_missing_paths_reported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yml").write_text("a: 1\n")
    (tmp_path / "notes.txt").write_text("not yaml")
    result = load_paths([tmp_path, tmp_path / "nope.yaml"])
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert "no such file" in result.problems[0].reason
