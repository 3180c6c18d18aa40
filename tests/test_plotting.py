"""The animation helper: frame cap, size cap, and a player that holds exactly the frames kept."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from molli_utils.plotting import AnimationHTML, animate, animate_images, select_frames  # noqa: E402


def _frames_in(html: str) -> int:
    return len(re.findall(r"frames\[\d+\] = ", html))


def test_select_frames_caps_and_keeps_the_ends():
    assert select_frames(5, 40) == [0, 1, 2, 3, 4]
    kept = select_frames(1000, 40)
    assert len(kept) == 40 and kept[0] == 0 and kept[-1] == 999 and kept == sorted(set(kept))
    assert max(np.diff(kept)) - min(np.diff(kept)) <= 1  # evenly spaced
    with pytest.raises(ValueError, match="at least one frame"):
        select_frames(0)
    with pytest.raises(ValueError, match="max_frames"):
        select_frames(10, 1)


def test_animate_embeds_only_the_frames_kept_and_closes_the_figure():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=30)
    (line,) = ax.plot([0, 1], [0, 0])
    seen = []

    def update(tau):
        seen.append(tau)
        line.set_ydata([0, tau])

    out = animate(fig, update, np.linspace(0.1, 2.0, 100), max_frames=12)
    assert isinstance(out, AnimationHTML) and out._repr_html_() is out.html
    assert _frames_in(out.html) == 12 and len(out.frames) == 12 and out.total == 100
    assert seen[-1] == pytest.approx(2.0)  # the last frame is kept
    assert "<script" in out.html and 'type="range"' in out.html  # the player: JavaScript and a slider
    assert not plt.fignum_exists(fig.number)  # no stray static copy of the last frame
    assert "12 of 100 frames" in repr(out)


def test_animate_refuses_an_animation_above_the_size_cap():
    fig, ax = plt.subplots(figsize=(3, 3), dpi=60)
    img = ax.imshow(np.zeros((64, 64)), vmin=0, vmax=1)
    rng = np.random.default_rng(0)
    noise = [rng.random((64, 64)) for _ in range(10)]  # incompressible frames
    with pytest.raises(ValueError, match="above max_kb=20"):
        animate(fig, img.set_data, noise, max_kb=20)


def test_animate_images_shares_one_colour_scale_and_titles():
    images = [np.full((8, 8), float(k)) for k in range(30)]
    out = animate_images(
        images, titles=[f"step {k}" for k in range(30)], figsize=(2, 2), dpi=30, max_frames=6, caption="a caption"
    )
    assert _frames_in(out.html) == 6 and out.frames == select_frames(30, 6)
    assert out.html.endswith("a caption</p>")
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        animate_images([np.zeros((2, 2))] * 3, titles=["a", "b"])
