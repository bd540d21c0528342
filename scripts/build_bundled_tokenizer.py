"""Generate the bundled CodeGen tokenizer files in tokenizer/data/.

CodeGen's tokenizer is GPT-2's byte-level BPE plus 38 added whitespace tokens. GPT-2's ranks ship inside the
openai-whisper sdist on PyPI (MIT) as `whisper/assets/gpt2.tiktoken`: one `base64(token) rank` per line. The
merges are derived from the ranks: a token of rank r is the merge of the two parts that BPE, restricted to ranks
below r, leaves when it runs on the token's bytes.

    python scripts/build_bundled_tokenizer.py                  # downloads the sdist with pip
    python scripts/build_bundled_tokenizer.py --tiktoken PATH  # or uses a gpt2.tiktoken at hand
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from codegen_lsp.tokenizer.codegen_tokenizer import bytes_to_unicode

OUT_DIR = Path(__file__).resolve().parent.parent / "tokenizer" / "data"
WHISPER_SDIST = "openai-whisper==20250625"
ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256


def codegen_whitespace_tokens() -> list[str]:
    """CodeGen's added tokens, ids 50257..50294: 31 down to 2 spaces, then 9 down to 2 tabs."""
    return [" " * n for n in range(31, 1, -1)] + ["\t" * n for n in range(9, 1, -1)]


def read_tiktoken(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def bpe_parts(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Run BPE on `token` using only merges whose result has a rank below `max_rank`."""
    parts = [bytes([b]) for b in token]
    while True:
        best_index, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_index, best_rank = i, rank
        if best_index < 0:
            return parts
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]


def derive_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = bpe_parts(token, ranks, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) does not split into one merge: {parts}")
        merges.append((parts[0], parts[1]))
    return merges


def write_files(ranks: dict[bytes, int], out_dir: Path) -> None:
    to_unicode = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    vocab = {as_text(token): rank for token, rank in sorted(ranks.items(), key=lambda item: item[1])}
    vocab[ENDOFTEXT] = ENDOFTEXT_ID
    merges = derive_merges(ranks)
    added = {text: ENDOFTEXT_ID + 1 + i for i, text in enumerate(codegen_whitespace_tokens())}
    special = {"content": ENDOFTEXT, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    with open(out_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for left, right in merges:
            f.write(f"{as_text(left)} {as_text(right)}\n")
    (out_dir / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": special, "eos_token": special, "unk_token": special}, indent=2)
    )
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_prefix_space": False,
                "bos_token": special,
                "eos_token": special,
                "unk_token": special,
                "model_max_length": 2048,
                "clean_up_tokenization_spaces": False,
                "tokenizer_class": "CodeGenTokenizer",
            },
            indent=2,
        )
    )
    print(f"wrote {len(vocab)} vocab entries, {len(merges)} merges, {len(added)} added tokens to {out_dir}")


def fetch_tiktoken(workdir: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            WHISPER_SDIST,
            "-d",
            str(workdir),
        ],
        check=True,
    )
    sdist = next(workdir.glob("openai*whisper-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken"))
        tar.extract(member, workdir, filter="data")
        return workdir / member.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiktoken", type=Path, help="path to gpt2.tiktoken (default: fetch the whisper sdist)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.tiktoken or fetch_tiktoken(Path(tmp))
        write_files(read_tiktoken(path), args.out)


if __name__ == "__main__":
    main()
