"""`codegen-lsp export`: a CodeGen model written as a GPT-J checkpoint that transformers (and vLLM) load as it is.

The oracle is transformers' own GPTJForCausalLM, loaded from the export with AutoModelForCausalLM (no remote
code); it must give our engine's logits (fp32, within 1e-4) for the 350M head layout, the 16B head shape and the
bundled model. Checkpoints are built from random tensors with a 257-token byte-level tokenizer, so that the
vocabulary (and the test) stays small.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from codegen_lsp.inference.checkpoint.config import ACTIVATIONS, CodeGenConfig
from codegen_lsp.inference.checkpoint.export_gptj import (
    GPTJ_ACTIVATIONS,
    ExportError,
    export_gptj,
    gptj_activation,
    gptj_shapes,
)
from codegen_lsp.inference.checkpoint.hub import BUNDLED, BUNDLED_MODEL_DIR
from codegen_lsp.inference.checkpoint.layout import expected_shapes
from codegen_lsp.inference.checkpoint.loading import load_folder
from codegen_lsp.inference.errors import ConfigError, ModelLoadError
from codegen_lsp.tokenizer.codegen_tokenizer import bytes_to_unicode
from tests.lsp_client import run_cli

TOLERANCE = 1e-4
EOS = "<|endoftext|>"
TINY_VOCAB = 320  # 256 bytes + <|endoftext|> + embedding rows no token uses, as CodeGen has
SHAPE_350M_HEADS = {"n_embd": 1024, "n_head": 16, "rotary_dim": 32}  # head size 64
SHAPE_16B_HEADS = {"n_embd": 6144, "n_head": 24, "rotary_dim": 64}  # head size 256


def write_byte_tokenizer(folder: Path) -> None:
    """A byte-level BPE without merges: every byte is a token, <|endoftext|> is id 256."""
    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    vocab[EOS] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([EOS])
    backend.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "CodeGenTokenizer",
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "add_prefix_space": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def write_codegen(folder: Path, seed: int = 0, **fields) -> Path:
    """A CodeGen checkpoint in transformers' layout with random weights scaled so that logits are O(1)."""
    values = {
        "vocab_size": TINY_VOCAB,
        "n_positions": 64,
        "n_embd": 64,
        "n_layer": 2,
        "n_head": 8,
        "rotary_dim": 4,
        "n_inner": 96,
        "bos_token_id": 256,
        "eos_token_id": 256,
        **fields,
    }
    config = CodeGenConfig(**values)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_shapes(config).items():
        noise = torch.randn(shape, generator=generator)
        if key.endswith("ln_1.weight") or key.endswith("ln_f.weight"):
            state[key] = 1.0 + 0.1 * noise
        elif len(shape) == 2 and "wte" not in key:
            state[key] = noise / shape[1] ** 0.5
        else:
            state[key] = 0.5 * noise
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    write_byte_tokenizer(folder)
    return folder


def random_ids(vocab: int, length: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(seed))  # (B, T)


def our_logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    loaded = load_folder(folder, "cpu", "float32")
    with torch.no_grad():
        return loaded.model(ids)  # (B, T, V)


def load_gptj(folder: Path):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    assert type(model).__name__ == "GPTJForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def gptj_logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_gptj(folder)(ids).logits  # (B, T, V)


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- exactness ---------------------------------------------------------------------------------------------------


def test_350m_head_layout_gives_our_logits(tmp_path):
    source = write_codegen(tmp_path / "codegen", **SHAPE_350M_HEADS, n_inner=256)
    export = export_gptj(str(source), tmp_path / "gptj")
    ids = random_ids(TINY_VOCAB)
    ours = our_logits(source, ids)
    assert ours.std() > 0.5  # not flat: a layout mistake moves logits far beyond the tolerance
    assert max_difference(gptj_logits(export, ids), ours) <= TOLERANCE


def test_350m_head_layout_matches_transformers_codegen_too(tmp_path):
    from transformers import AutoModelForCausalLM

    source = write_codegen(tmp_path / "codegen", **SHAPE_350M_HEADS, n_inner=256, n_layer=1)
    export = export_gptj(str(source), tmp_path / "gptj")
    ids = random_ids(TINY_VOCAB)
    with torch.no_grad():
        codegen = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()(ids).logits
    assert max_difference(gptj_logits(export, ids), codegen) <= TOLERANCE


@pytest.mark.slow
def test_16b_head_shape_gives_our_logits(tmp_path):
    source = write_codegen(tmp_path / "codegen", **SHAPE_16B_HEADS, n_layer=1, n_inner=64)
    export = export_gptj(str(source), tmp_path / "gptj")
    ids = random_ids(TINY_VOCAB, length=40)
    ours = our_logits(source, ids)
    assert ours.std() > 0.5
    assert max_difference(gptj_logits(export, ids), ours) <= TOLERANCE


def test_bundled_model_gives_our_logits_and_token_ids(tmp_path):
    from transformers import AutoTokenizer

    export = export_gptj(BUNDLED, tmp_path / "gptj")
    loaded = load_folder(BUNDLED_MODEL_DIR, "cpu", "float32")
    text = "import os\n\n\ndef main(argv):\n    for path in argv:\n        print(os.path.exists(path))  # 日本\n"
    ids = loaded.tokenizer.encode(text)
    assert AutoTokenizer.from_pretrained(export)(text)["input_ids"] == ids
    batch = torch.tensor([ids])  # (1, T)
    with torch.no_grad():
        ours = loaded.model(batch)
    assert max_difference(gptj_logits(export, batch), ours) <= TOLERANCE


def test_a_tied_head_is_written_as_a_copy_of_the_embedding(tmp_path):
    export = export_gptj(BUNDLED, tmp_path / "gptj")
    assert json.loads((BUNDLED_MODEL_DIR / "config.json").read_text())["tie_word_embeddings"] is True
    assert json.loads((export / "config.json").read_text())["tie_word_embeddings"] is False
    with safe_open(export / "model.safetensors", "pt") as f:
        assert torch.equal(f.get_tensor("lm_head.weight"), f.get_tensor("transformer.wte.weight"))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_codegen_activation_exports_exactly(tmp_path, activation):
    source = write_codegen(tmp_path / "codegen", activation_function=activation)
    export = export_gptj(str(source), tmp_path / "gptj")
    ids = random_ids(TINY_VOCAB)
    assert max_difference(gptj_logits(export, ids), our_logits(source, ids)) <= TOLERANCE


def test_swapping_k_and_v_in_the_export_breaks_parity(tmp_path):
    """The parity checks above can fail: the one wrong split that keeps every shape moves the logits."""
    source = write_codegen(tmp_path / "codegen")
    export = export_gptj(str(source), tmp_path / "gptj")
    model = load_gptj(export)
    for block in model.transformer.h:
        block.attn.k_proj.weight, block.attn.v_proj.weight = block.attn.v_proj.weight, block.attn.k_proj.weight
    ids = random_ids(TINY_VOCAB)
    with torch.no_grad():
        assert max_difference(model(ids).logits, our_logits(source, ids)) > 100 * TOLERANCE


# -- what is written ---------------------------------------------------------------------------------------------


def test_config_maps_every_field(tmp_path):
    from transformers import AutoConfig

    source = write_codegen(
        tmp_path / "codegen",
        n_positions=48,
        layer_norm_epsilon=1e-6,
        activation_function="swish",
        bos_token_id=7,
        eos_token_id=[256, 9],
    )
    written = json.loads((export_gptj(str(source), tmp_path / "gptj") / "config.json").read_text())
    assert written == {
        "architectures": ["GPTJForCausalLM"],
        "model_type": "gptj",
        "vocab_size": TINY_VOCAB,
        "n_positions": 48,
        "n_embd": 64,
        "n_layer": 2,
        "n_head": 8,
        "rotary_dim": 4,
        "n_inner": 96,
        "activation_function": "silu",
        "layer_norm_epsilon": 1e-6,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": 7,
        "eos_token_id": [256, 9],
        "tie_word_embeddings": False,
        "dtype": "float32",
        "torch_dtype": "float32",
    }
    config = AutoConfig.from_pretrained(tmp_path / "gptj")  # no trust_remote_code
    assert type(config).__name__ == "GPTJConfig"
    assert (config.max_position_embeddings, config.hidden_size, config.num_attention_heads) == (48, 64, 8)


def test_weights_hold_split_q_k_v_and_nothing_fused(tmp_path):
    source = write_codegen(tmp_path / "codegen")
    export = export_gptj(str(source), tmp_path / "gptj")
    config = CodeGenConfig.from_file(source / "config.json")
    with safe_open(export / "model.safetensors", "pt") as f:
        assert {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()} == gptj_shapes(config)
        assert f.metadata() == {"format": "pt"}
    assert sorted(p.name for p in export.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_hub_layout_tokenizer_files_are_copied(tmp_path):
    """A Hub CodeGen folder carries vocab.json, merges.txt, added_tokens.json, ...: all travel."""
    from transformers import AutoTokenizer

    from tests.checkpoints import tiny_hf_model, write_checkpoint

    source = write_checkpoint(tmp_path / "codegen", tiny_hf_model(n_layer=1))
    export = export_gptj(str(source), tmp_path / "gptj")
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (export / name).read_bytes() == (source / name).read_bytes()
    text = "def f(x):\n        return x  # spaces"
    assert AutoTokenizer.from_pretrained(export)(text)["input_ids"] == load_folder(
        source, "cpu", "float32"
    ).tokenizer.encode(text)


def test_dtype_casts_every_tensor(tmp_path):
    source = write_codegen(tmp_path / "codegen")
    export = export_gptj(str(source), tmp_path / "gptj", dtype="bfloat16")
    assert json.loads((export / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(export / "model.safetensors", "pt") as f:
        assert {f.get_tensor(key).dtype for key in f.keys()} == {torch.bfloat16}


def test_an_empty_outdir_is_used(tmp_path):
    (tmp_path / "gptj").mkdir()
    export_gptj(str(write_codegen(tmp_path / "codegen")), tmp_path / "gptj")
    assert (tmp_path / "gptj" / "model.safetensors").is_file()


# -- refusals: one clear line, nothing written -------------------------------------------------------------------


def nothing_left_beside(outdir: Path) -> bool:
    leftovers = [p for p in outdir.parent.iterdir() if p.name.startswith(f".{outdir.name}.partial")]
    return not outdir.exists() and not leftovers


def test_refuses_an_outdir_that_holds_files_and_keeps_them(tmp_path):
    source = write_codegen(tmp_path / "codegen")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_gptj(str(source), tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="not an empty folder"):
        export_gptj(str(source), tmp_path / "busy" / "notes.txt")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"n_head": 6, "n_embd": 48}, "multiple of 4"),
        ({"rotary_dim": None}, "rotary_dim"),
        ({"rotary_dim": 3}, "rotary_dim"),
        ({"model_type": "gptj"}, "model_type"),
        ({"activation_function": "tanh"}, "activation_function"),
    ],
)
def test_refuses_configs_gptj_cannot_express(tmp_path, changes, named):
    source = write_codegen(tmp_path / "codegen")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **changes}))
    with pytest.raises(ConfigError, match=named):
        export_gptj(str(source), tmp_path / "gptj")
    assert nothing_left_beside(tmp_path / "gptj")


def test_an_activation_without_a_gptj_twin_is_refused():
    assert set(ACTIVATIONS) <= set(GPTJ_ACTIVATIONS)  # adding one to CodeGenConfig means mapping it here
    with pytest.raises(ExportError, match="no GPT-J equivalent"):
        gptj_activation("tanh")


def test_every_mapped_activation_is_the_same_function_in_transformers():
    from transformers.activations import ACT2FN

    x = torch.linspace(-6, 6, 1001)
    for codegen_name, gptj_name in GPTJ_ACTIVATIONS.items():
        assert torch.equal(ACT2FN[codegen_name](x), ACT2FN[gptj_name](x)), codegen_name


def test_refuses_a_missing_tokenizer_before_writing(tmp_path):
    source = write_codegen(tmp_path / "codegen")
    (source / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer"):
        export_gptj(str(source), tmp_path / "gptj")
    assert nothing_left_beside(tmp_path / "gptj")


def test_refuses_weights_that_do_not_match_the_config(tmp_path):
    source = write_codegen(tmp_path / "codegen", n_layer=2)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    with pytest.raises(ModelLoadError, match="missing keys: transformer.h.2"):
        export_gptj(str(source), tmp_path / "gptj")
    assert nothing_left_beside(tmp_path / "gptj")


def test_refuses_a_wrong_shape_midway_and_cleans_up(tmp_path):
    """A bad tensor found while streaming: the half-written export is removed."""
    source = write_codegen(tmp_path / "codegen")
    from safetensors.torch import load_file

    state = load_file(source / "model.safetensors")
    state["transformer.h.1.mlp.fc_in.bias"] = torch.zeros(95)
    save_file(state, str(source / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="fc_in.bias: expected shape"):
        export_gptj(str(source), tmp_path / "gptj")
    assert nothing_left_beside(tmp_path / "gptj")


def test_refuses_an_unknown_dtype(tmp_path):
    with pytest.raises(ExportError, match="dtype"):
        export_gptj(BUNDLED, tmp_path / "gptj", dtype="int8")


def test_refuses_a_hub_id_offline(tmp_path):
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        export_gptj("Salesforce/codegen-350M-mono", tmp_path / "gptj")


# -- the command line --------------------------------------------------------------------------------------------


def export_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("export", *args)


def test_cli_exports_the_bundled_model_and_refuses_to_overwrite(tmp_path):
    done = export_cli(BUNDLED, str(tmp_path / "gptj"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote a GPT-J checkpoint to {tmp_path / 'gptj'}\n"
    assert load_gptj(tmp_path / "gptj").config.n_layer == 6

    again = export_cli(BUNDLED, str(tmp_path / "gptj"))
    assert again.returncode == 2
    assert again.stderr.startswith("codegen-lsp export: error: ") and "not an empty folder" in again.stderr
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr


def test_cli_names_a_missing_model_folder(tmp_path):
    failed = export_cli(str(tmp_path / "nowhere"), str(tmp_path / "gptj"))
    assert failed.returncode == 2
    assert (
        failed.stderr == f"codegen-lsp export: error: cannot export '{tmp_path / 'nowhere'}': model folder "
        f"{tmp_path / 'nowhere'} does not exist\n"
    )
