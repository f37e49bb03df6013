"""Reference for bench_train_step.py: one PaddleSeg 2.8 UNet training step at batch 4, 320x320, on CPU.

PaddleSeg is not a nanoseg dependency. Run this in a separate environment:

    python3 -m venv /tmp/paddle-venv
    /tmp/paddle-venv/bin/pip install paddlepaddle==3.3.1 paddleseg==2.8.0
    /tmp/paddle-venv/bin/python benchmarks/bench_paddleseg_step.py

It builds the same step as nanoseg's benchmark: UNet (1 input channel, 2 classes), DiceLoss,
SGD with momentum 0.9, lr 0.01, and reports the fastest of three steps after a warm-up.
"""

import time

import numpy as np
import paddle
from paddleseg.models import UNet
from paddleseg.models.losses import DiceLoss


def main(batch: int = 4, size: int = 320, repeats: int = 3) -> None:
    paddle.set_device("cpu")
    paddle.seed(0)
    model = UNet(num_classes=2, in_channels=1)
    model.train()
    loss_fn = DiceLoss()
    opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=model.parameters())
    # PaddleSeg 2.8 needs numpy < 2 beside its OpenCV: pip install "numpy<2" "opencv-python<4.11"
    x = paddle.to_tensor(np.random.rand(batch, 1, size, size).astype("float32"))
    y = paddle.to_tensor(np.random.randint(0, 2, (batch, size, size)).astype("int64"))
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        logits = model(x)[0]
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        times.append(time.perf_counter() - t0)
    print(f"paddle {paddle.__version__}: PaddleSeg UNet train step batch {batch}, {size}x{size}, CPU: "
          f"{min(times[1:]):.2f} s")


if __name__ == "__main__":
    main()
