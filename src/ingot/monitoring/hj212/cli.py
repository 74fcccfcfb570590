"""`ingot hj212 decode|encode`: the codec on standard input and output, one packet / JSON object per line.

decode: exit status 0 when every packet decoded, 1 when at least one was rejected (every line is still answered,
so a pipeline sees all results), 2 for a bad option. Blank lines are skipped. Input is read as bytes, so a line
that is not UTF-8 is a rejection, never a traceback.
"""
from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from ingot.monitoring.hj212.codec import TOLERANCES, HJ212Error, decode, encode, packet_from_json

app = typer.Typer(help="HJ 212 数据包编解码 / HJ 212 packet codec", no_args_is_help=True)


def _tolerances(options: Optional[List[str]]) -> frozenset[str]:
    chosen = frozenset(options or ())
    unknown = chosen - TOLERANCES.keys()
    if unknown:
        typer.echo(f"未知的容错选项 / unknown tolerance option(s): {', '.join(sorted(unknown))}; "
                   f"known: {', '.join(sorted(TOLERANCES))}", err=True)
        raise typer.Exit(2)
    return chosen


def _input_lines() -> list[tuple[int, bytes]]:
    """(line number, line) of the non-blank lines of standard input, numbered as the user sees them."""
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    raw = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    return [(number, line.rstrip(b"\r")) for number, line in enumerate(raw.split(b"\n"), start=1) if line.strip()]


@app.command("decode")
def decode_command(
    tolerate: Optional[List[str]] = typer.Option(None, "--tolerate", "-t", help="named tolerance, repeatable: "
                                                  + ", ".join(sorted(TOLERANCES))),
) -> None:
    """解码标准输入中的数据包（每行一个），每行输出一个 JSON 对象 / decode packets, one JSON object per line."""
    allowed = _tolerances(tolerate)
    rejected = 0
    for number, line in _input_lines():
        try:
            result = decode(line, allowed).as_json()
        except HJ212Error as error:
            rejected += 1
            result = error.as_json()
        result["line"] = number
        typer.echo(json.dumps(result, ensure_ascii=False))
    if rejected:
        raise typer.Exit(1)


@app.command("encode")
def encode_command(
    tolerate: Optional[List[str]] = typer.Option(None, "--tolerate", "-t", help="tolerances the built packet may need"),
) -> None:
    """由 JSON（每行一个对象，格式同 decode 的输出）生成数据包 / build packets from JSON objects, one per line.

    Each built packet is decoded again before it is written, so only packets the codec accepts come out."""
    allowed = _tolerances(tolerate)
    failed = 0
    for number, line in _input_lines():
        try:
            try:
                data = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as error:
                raise HJ212Error("json_syntax", f"第 {number} 行不是有效的 JSON", f"line {number} is not valid JSON: {error}")
            framed = encode(packet_from_json(data))
            decode(framed, allowed)
        except HJ212Error as error:
            failed += 1
            typer.echo(json.dumps({**error.as_json(), "line": number}, ensure_ascii=False), err=True)
            continue
        typer.echo(framed.decode("utf-8").rstrip("\r\n"))
    if failed:
        raise typer.Exit(1)
