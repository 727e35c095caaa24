"""Training runs, checkpoints, resumes exactly, and exports an ONNX model the receiver loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cloud_receiver.recovery.network import OnnxRunner
from models import export, train
from models.architecture import build

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TINY = ["--patch", "32", "--region", "64", "--regions", "2", "--batch", "2", "--holdout", "2"]
TINY += ["--validation-size", "64", "--threads", "1", "--epoch-steps", "2", "--steps", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    for path in SAMPLES.glob("*.png"):
        shutil.copy(path, folder)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained(data: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert train.main([*TINY, "--data", str(data), "--cache", str(cache), "--out", str(out)]) == 0
    return out


def test_a_run_logs_validation_and_saves_checkpoints(trained: Path) -> None:
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert record["auto-q75/enhanced"] > 10
        assert record["adaptive-50%/classical"] > 10
        assert record["gain"] == pytest.approx(
            np.mean(
                [
                    record[k] - record[k.replace("/enhanced", "/classical")]
                    for k in record
                    if k.endswith("/enhanced")
                ]
            )
        )
    assert record["lossless-q30/enhanced"] > 10
    state = torch.load(trained / "last.pt", weights_only=False)
    assert state["step"] == 4
    assert state["kinds"] == ["adaptive", "auto", "lossless"]
    assert (trained / "best.pt").exists()


def test_the_pair_cache_is_built_once_and_reused(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    built = sorted(cache.glob("*.npz"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    again = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path)]
    assert train.main(again) == 0
    assert sorted(cache.glob("*.npz")) == built
    assert built[0].stat().st_mtime_ns == stamp


def test_resume_continues_exactly_where_the_run_stopped(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    # Two steps, stop, resume for two more: the same weights as four steps in one go.
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path)]
    assert train.main([*run, "--stop-at", "2"]) == 0
    assert train.main([*run, "--resume"]) == 0
    resumed = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    straight = torch.load(trained / "last.pt", weights_only=False)["model"]
    assert resumed.keys() == straight.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)


def test_resume_without_a_last_checkpoint_continues_from_the_committed_one(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    # A fresh clone has no OUT/last.pt: --resume then starts from the committed checkpoint.
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path)]
    options, resume = train.parse([*run, "--steps", "6", "--resume"])
    assert resume
    result = train.train(options, resume=True, fallback=trained / "last.pt")
    assert result["step"] == 6
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [6]
    # Without --resume the committed checkpoint is never read.
    fresh, _ = train.parse([*run, "--steps", "2", "--out", str(tmp_path / "fresh")])
    assert train.train(fresh, resume=False, fallback=trained / "last.pt")["step"] == 2


def test_resume_from_other_rate_points_resets_the_best_gain_and_keeps_the_kinds(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    # A checkpoint validated on fewer rate points (before lossless joined) with a best gain
    # no run on these points would beat: the new run's first validation must still be best.
    state = torch.load(trained / "last.pt", weights_only=False)
    state["validation"] = {k: v for k, v in state["validation"].items() if "lossless" not in k}
    state["best"] = 99.0
    state["kinds"] = ["auto", "paper"]
    torch.save(state, tmp_path / "older.pt")
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path / "run")]
    options, _ = train.parse([*run, "--steps", "6"])
    train.train(options, resume=True, fallback=tmp_path / "older.pt")
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["step"] == 6
    assert best["best"] < 99.0
    assert best["kinds"] == ["adaptive", "auto", "lossless", "paper"]
    # The same rate points keep the best gain: nothing beat 99 dB, so no best.pt is written.
    state["validation"] = best["validation"]
    torch.save(state, tmp_path / "same.pt")
    options, _ = train.parse([*run, "--steps", "6", "--out", str(tmp_path / "again")])
    train.train(options, resume=True, fallback=tmp_path / "same.pt")
    assert not (tmp_path / "again" / "best.pt").exists()


def test_resume_refuses_a_checkpoint_of_another_network(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path / "run")]
    options, _ = train.parse([*run, "--resume", "--blocks", "1"])
    with pytest.raises(SystemExit, match="not this network"):
        train.train(options, resume=True, fallback=trained / "last.pt")


def test_init_from_grows_a_trained_network_and_resumes_its_own_run(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path / "grown")]
    grow = [*run, "--resume", "--init-from", str(trained / "last.pt"), "--blocks", "7"]
    # --resume with nothing in OUT grows from --init-from, never from the committed fallback.
    options, _ = train.parse([*grow, "--steps", "2"])
    assert train.train(options, resume=True, fallback=tmp_path / "missing.pt")["step"] == 2
    first = torch.load(tmp_path / "grown" / "last.pt", weights_only=False)
    assert first["config"]["blocks"] == 7
    assert first["kinds"] == ["adaptive", "auto", "lossless"]
    source = torch.load(trained / "last.pt", weights_only=False)["model"]
    # Two steps moved the weights the source had, starting from them (a fresh start would be
    # far away: a random initialisation).
    head = "head.0.weight"
    drift = float((first["model"][head] - source[head]).abs().max())
    assert 0 < drift < 0.01
    # The run resumes from its own last.pt, taking its network from it (no --blocks needed).
    options, _ = train.parse([*run, "--resume", "--steps", "4"])
    assert train.train(options, resume=True, fallback=trained / "last.pt")["step"] == 4
    assert torch.load(tmp_path / "grown" / "last.pt", weights_only=False)["config"]["blocks"] == 7


def test_init_from_refuses_a_network_that_does_not_fit(
    data: Path, cache: Path, trained: Path, tmp_path: Path
) -> None:
    run = [*TINY, "--data", str(data), "--cache", str(cache), "--out", str(tmp_path / "run")]
    options, _ = train.parse([*run, "--init-from", str(trained / "last.pt"), "--blocks", "5"])
    with pytest.raises(SystemExit, match="do not fit"):
        train.train(options, resume=False)


def test_export_writes_a_model_the_receiver_loads(trained: Path, tmp_path: Path) -> None:
    path = tmp_path / "dctlink-test-7.onnx"
    assert export.main([str(trained / "best.pt"), str(path)]) == 0
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    runner = OnnxRunner(path)
    assert runner.version == "dctlink-test-7"
    assert runner.metadata["trained_kinds"] == "adaptive,auto,lossless"
    # Dynamic height and width, and the same numbers as torch.
    network, _ = export.load_checkpoint(trained / "best.pt")
    rng = np.random.default_rng(0)
    for height, width in ((24, 40), (64, 96)):
        image = rng.random((1, 3, height, width), dtype=np.float32)
        condition = rng.random((1, 6, height, width), dtype=np.float32)
        with torch.no_grad():
            expected = network(torch.from_numpy(image), torch.from_numpy(condition)).numpy()
        actual = runner.run({"image": image, "condition": condition})["enhanced"]
        np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_export_check_catches_a_graph_that_is_not_the_checkpoint(
    trained: Path, tmp_path: Path
) -> None:
    path = tmp_path / "m.onnx"
    assert export.main([str(trained / "best.pt"), str(path)]) == 0
    pairs = list(export.sample_pairs())[:1]
    trained_net, _ = export.load_checkpoint(trained / "best.pt")
    assert export.max_difference(trained_net, path, pairs) <= 1e-3
    torch.manual_seed(1)
    other = build("dctlink").eval()
    for parameter in other.parameters():  # a network that really changes its input
        torch.nn.init.normal_(parameter, std=0.05)
    assert export.max_difference(other, path, pairs) > 1e-3
    # A difference over the tolerance fails the export.
    assert export.main([str(trained / "best.pt"), str(path), "--tolerance", "-1"]) == 1
