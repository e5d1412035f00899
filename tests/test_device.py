"""The `device` and `dtype` settings: resolved in one place, reaching every stage that touches a model, and the
CPU reference unchanged by them. Tests named `cuda` run only where torch sees a GPU (scripts/gpu_check.sh)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lumina.configure import method_context, model_loader
from lumina.methods import get_method
from lumina.methods.baselines.gradient_similarity import inner_product_scores
from lumina.methods.baselines.gradients import per_example_gradients
from lumina.methods.options import METHOD_OPTIONS
from lumina.models.capture import capture_gradients
from lumina.models.embedded_recipe import EmbeddedModelConfig
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.protocol import Item
from lumina.models.training import TrainConfig
from lumina.runs.device import REFERENCE, Placement, placement_from, resolve_device, to_numpy
from lumina.runs.errors import ParameterError
from lumina.runs.layout import Layout
from tests.generator_fixtures import DESCRIPTIONS, TINY_CODEC, TINY_LM, tiny_generator

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("lumina", "groundtruth", "execution", "aria", "experiments")
DEVICE_NAME = re.compile(r"""["'](cpu|cuda|mps|xla)(:\d+)?["']|\.cuda\(|\.to\(\s*["']""")
GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA GPU visible to torch")


def test_no_device_is_named_outside_the_one_place_that_resolves_the_setting():
    offenders = []
    for package in LIBRARY:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "lumina" / "runs" / "device.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if DEVICE_NAME.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "hard-coded devices:\n" + "\n".join(offenders)
    assert DEVICE_NAME.search('x = torch.zeros(3, device="cpu")') and DEVICE_NAME.search("m.cuda()")


def test_device_names_resolve_or_fail_with_the_fix():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if GPU else "cpu")
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ParameterError, match="device must be one of"):
            resolve_device(bad)
    if not GPU:
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            Placement("cuda")
    with pytest.raises(ParameterError, match="dtype must be one of"):
        Placement(dtype="float64")
    with pytest.raises(ParameterError, match="float16 needs a GPU"):
        Placement("cpu", "float16")


def test_placement_tags_keep_cpu_float32_caches_where_they_were():
    assert REFERENCE.is_reference and REFERENCE.tag == "" and Placement("auto").is_reference != GPU
    bf16 = Placement("cpu", "bfloat16")
    assert bf16.tag == "@cpu-bfloat16" and bf16.record() == {"device": "cpu", "dtype": "bfloat16"}
    assert Layout(Path("c"), Path("r"), "e").method_cache("trak") == Path("c/methods/e/trak")
    assert Layout(Path("c"), Path("r"), "e", bf16).method_cache("trak") == Path("c/methods/e/trak@cpu-bfloat16")


def test_the_config_names_the_reference_placement():
    cfg = OmegaConf.load(REPO / "conf" / "config.yaml")
    assert placement_from(cfg) == REFERENCE
    assert placement_from({}) == REFERENCE
    assert placement_from({"device": "cpu", "dtype": "bfloat16"}).torch_dtype == torch.bfloat16


def test_to_numpy_widens_half_types_and_shares_float32_memory():
    x = torch.arange(4, dtype=torch.float32)
    assert np.shares_memory(to_numpy(x), x.numpy())
    half = to_numpy(torch.tensor([1.5, 2.0], dtype=torch.bfloat16))
    assert half.dtype == np.float32 and half.tolist() == [1.5, 2.0]


TRAIN = TrainConfig(epochs=2, batch_size=2, crop_frames=48, warmup_steps=1, checkpoints=2, resume_every=1000)
MODEL = {"name": "tiny", "kind": "embedded", **asdict(EmbeddedModelConfig(codec=TINY_CODEC, lm=TINY_LM, train=TRAIN))}


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus.subset(tiny_corpus.train_ids[:4] + tiny_corpus.query_ids[:3])


def scores_of(corpus, placement: Placement | None, root: Path) -> dict[str, np.ndarray]:
    """GradDot's and LoGra's matrices with a generator trained from scratch under `root` on `placement`
    (None: the loader's default)."""
    extra = {} if placement is None else {"placement": placement}
    load = model_loader(MODEL, corpus, root / "cache", progress=False, **extra)
    out = {}
    for name, fast in (("graddot", {"parameters": [-1]}), ("logra", {"proj_dim": 4, "layers": [-1]})):
        options = {**METHOD_OPTIONS[name]().as_dict(), **fast, "segment_s": 1.0}
        where = Layout(root / "cache", root / "runs", "tiny", placement or REFERENCE)
        (matrix,) = get_method(name)(method_context(corpus, options, where, load, progress=False))
        out[name] = matrix.scores
    return out


def test_explicit_cpu_gives_the_default_bits(corpus, tmp_path):
    """Each generator trained from scratch: training, gradients and dattri's compressors all see the setting."""
    default = scores_of(corpus, None, tmp_path / "default")
    explicit = scores_of(corpus, placement_from({"device": "cpu", "dtype": "float32"}), tmp_path / "explicit")
    for name, scores in default.items():
        assert scores.tobytes() == explicit[name].tobytes(), name


def synthetic_items(generator: MusicgenGenerator, n: int, frames: int = 40, seed: int = 0) -> list[Item]:
    """Random codes as items (no corpus needed)."""
    rng = np.random.default_rng(seed)
    cardinality = generator.special_token
    return [Item(rng.integers(0, cardinality, (generator.num_codebooks, frames - 3 * i)), DESCRIPTIONS[i % 4])
            for i in range(n)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return tiny_generator(seed=3).save(tmp_path_factory.mktemp("generator") / "gen")


def model_outputs(generator: MusicgenGenerator, cache: Path) -> dict[str, np.ndarray]:
    """Clip losses, captured gradients of the top layer, per-example gradients and GradDot scores (cached under
    `cache`) on synthetic codes, as float64 host arrays."""
    items = synthetic_items(generator, 6)
    batch = generator.collate(items)
    names = generator.parameter_group([-1])
    with torch.no_grad():
        losses = generator.loss_module()(**batch)
    tokens = torch.from_numpy(np.stack([item.tokens[:, :20] for item in items]))
    captured = capture_gradients(generator, tokens, [item.text for item in items], names)
    per_example = per_example_gradients(generator.loss_module(), names, batch)
    state = {n: p.detach().clone() for n, p in generator.trainable_parameters().items()}
    scores = inner_product_scores(generator, names, [state], [1.0], items[:4], items[4:], cache,
                                  progress=False)
    return {"losses": to_numpy(losses).astype(np.float64),
            "captured": np.concatenate([to_numpy(captured[n]).ravel() for n in names]).astype(np.float64),
            "per_example": to_numpy(per_example).astype(np.float64), "graddot": scores.astype(np.float64)}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_gpu)])
def test_model_and_gradients_on_a_device_match_the_cpu(saved, device, tmp_path):
    reference = model_outputs(MusicgenGenerator.load(saved), tmp_path / "reference")
    generator = MusicgenGenerator.load(saved, Placement(device))
    assert generator.device.type == device and generator.dtype == torch.float32
    outputs = model_outputs(generator, tmp_path / device)
    for key, expected in reference.items():
        if device == "cpu":
            assert outputs[key].tobytes() == expected.tobytes(), key
        else:  # another kernel library: float32 rounding only
            np.testing.assert_allclose(outputs[key], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max(),
                                       err_msg=key)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_gpu)])
def test_bfloat16_tracks_float32(saved, device, tmp_path):
    reference = model_outputs(MusicgenGenerator.load(saved, Placement(device)), tmp_path / "float32")
    generator = MusicgenGenerator.load(saved, Placement(device, "bfloat16"))
    assert generator.dtype == torch.bfloat16 and generator.identity() != MusicgenGenerator.load(saved).identity()
    outputs = model_outputs(generator, tmp_path / "bfloat16")
    np.testing.assert_allclose(outputs["losses"], reference["losses"], rtol=0.02)
    for key in ("captured", "per_example", "graddot"):
        a, b = outputs[key].ravel(), reference[key].ravel()
        assert a.dtype == np.float64 and np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.98, key


@needs_gpu
def test_cuda_trains_and_runs_a_method_end_to_end(corpus, tmp_path):
    """Training, GradDot and LoGra (dattri's compressors on the GPU): finite, and ranked like the CPU's."""
    cpu = scores_of(corpus, None, tmp_path / "cpu")
    gpu = scores_of(corpus, Placement("cuda"), tmp_path / "gpu")
    for name, scores in cpu.items():
        assert np.isfinite(gpu[name]).all()
        assert np.corrcoef(scores.ravel(), gpu[name].ravel())[0, 1] > 0.9, name


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_gpu)])
def test_the_symbolic_generator_follows_the_placement(device, tmp_path):
    """The MusicTransformer loads onto a placement: its losses and sampled tokens equal the reference's bit for
    bit on CPU float32, and bfloat16 tracks them."""
    from lumina.models.music_transformer import ArchConfig, MusicTransformerGenerator, build_model, sample
    from tests.test_symbolic import TINY_ARCH

    saved = MusicTransformerGenerator(build_model(ArchConfig(**TINY_ARCH), 0)).save(tmp_path / "musictransformer")
    reference = MusicTransformerGenerator.load(saved)
    rng = np.random.default_rng(0)
    items = [Item(rng.integers(0, 388, n)[None], "") for n in (12, 7)]
    expected = to_numpy(reference.loss_module()(**reference.collate(items))).astype(np.float64)
    expected_tokens = sample(reference, items[0].tokens[0, :4], 10, seed=3)
    for dtype in ("float32", "bfloat16"):
        generator = MusicTransformerGenerator.load(saved, Placement(device, dtype))
        assert generator.device.type == device and generator.dtype == Placement(device, dtype).torch_dtype
        got = to_numpy(generator.loss_module()(**generator.collate(items))).astype(np.float64)
        tokens = sample(generator, items[0].tokens[0, :4], 10, seed=3)
        assert tokens.shape == (10,) and (tokens[:4] == items[0].tokens[0, :4]).all()
        if device == "cpu" and dtype == "float32":
            assert got.tobytes() == expected.tobytes() and (tokens == expected_tokens).all()
        else:
            np.testing.assert_allclose(got, expected, rtol=0.02 if dtype == "bfloat16" else 1e-4)
