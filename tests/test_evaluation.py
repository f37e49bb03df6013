"""One tile rule: training's validation, `nanoseg evaluate` and `nanoseg predict` segment alike."""

from nanoseg.evaluation.evaluate import evaluate_checkpoint, evaluate_folders
from nanoseg.inference.predict import predict
from nanoseg.inference.sliding import tile_rule
from nanoseg.synthesis import load_params, synthesize_dataset
from nanoseg.training.config import TrainConfig
from nanoseg.training.train import train


def test_tile_rule_rounds_the_training_size_up_to_32_and_never_below_256():
    assert tile_rule(64) == (256, 64)
    assert tile_rule(321) == (352, 88)
    assert tile_rule(None) == (352, 88)  # checkpoints that do not record it: the paper's 321


def test_validation_evaluate_and_predict_score_images_larger_than_a_tile_alike(tmp_path, tiny_sd):
    # trained on 64 px crops, validated on 288 px images: the tile (256) is smaller than the image
    val = tmp_path / "val"
    synthesize_dataset(val, n=2, seed=5, params=load_params("simple"), preset="simple", size_hw=(288, 288), workers=1, progress=False)
    cfg = TrainConfig(train=str(tiny_sd), val=str(val), model="unet-small", iters=2, batch_size=2, crop=64,
                      eval_every=2, seed=0, device="cpu")
    best = train(cfg, tmp_path / "run", progress=False)
    again = evaluate_checkpoint(tmp_path / "run" / "best.pt", val, device="cpu")
    assert again["miou"] == best["miou"] and again["class_iou"] == best["class_iou"]
    predict(tmp_path / "run" / "best.pt", [val / "images"], tmp_path / "pred", device="cpu", progress=False)
    assert evaluate_folders(tmp_path / "pred", val)["class_iou"] == again["class_iou"]
