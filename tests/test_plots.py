"""The plots tell the truth about what they show: the seed count, a band only from two seeds, a
zoomed tail where the arms' final gap is visible, norms compared across arms only as ratios; and
token counts are printed in K/M/B."""
from argparse import Namespace

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PolyCollection
from test_eval import write_run

from eval import plot_curves
from eval.log_values import load_numeric_runs
from eval.runs import fmt_tokens, setting_differences, setting_label

ARGS = Namespace(smooth=0.9, baseline="bpe")


def runs_with_seeds(tmp_path, seeds):
    """bpe and kronecker runs for each seed: val loss from 10.8 at step 0 down to ~3 at step 400."""
    for seed in seeds:
        write_run(tmp_path, "bpe", seed, [10.8, 5, 4, 3.5, 3.0 + 0.1 * seed])
        write_run(tmp_path, "kronecker", seed, [10.8, 4.0, 3.4, 2.8, 2.7 + 0.1 * seed])
    return load_numeric_runs(tmp_path)


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.mark.parametrize("plot", [plot_curves.plot_val_loss, plot_curves.plot_train_loss, plot_curves.plot_gap,
                                  plot_curves.plot_norm_drift])
def test_one_seed_draws_no_band_and_the_title_says_one_seed(plot, tmp_path):
    fig = plot(runs_with_seeds(tmp_path, [0]), ARGS)
    assert "1 seed, no spread shown" in fig._suptitle.get_text()
    assert "band" not in fig._suptitle.get_text()
    assert all(not bands(ax) for ax in fig.axes)
    plt.close(fig)


def test_two_seeds_draw_a_min_max_band_and_the_title_says_so(tmp_path):
    fig = plot_curves.plot_val_loss(runs_with_seeds(tmp_path, [0, 1]), ARGS)
    assert "mean of 2 seeds, min-max band" in fig._suptitle.get_text()
    assert all(len(bands(ax)) == 2 for ax in fig.axes)  # one per arm, on both panels
    plt.close(fig)


def test_arms_with_one_and_two_seeds_say_where_the_band_is():
    assert plot_curves.seeds_text([1, 2]) == "mean of 1-2 seeds, min-max band where >= 2"
    assert plot_curves.seeds_text([3, 3]) == "mean of 3 seeds, min-max band"


@pytest.mark.parametrize("plot", [plot_curves.plot_val_loss, plot_curves.plot_train_loss])
def test_the_tail_panel_leaves_out_the_step_0_loss_so_the_final_gap_is_visible(plot, tmp_path):
    fig = plot(runs_with_seeds(tmp_path, [0]), Namespace(smooth=0.0))
    ax_all, ax_tail = fig.axes
    assert ax_all.get_ylim()[1] > 10.8  # every step, the initial loss included
    low, high = ax_tail.get_ylim()
    assert high < 4.5 and low < 2.8  # steps 200..400 only: 2.7 (kronecker val) to 4.1 (bpe train)
    assert ax_tail.get_xlim()[0] >= 190 and "step >= 200" in ax_tail.get_title()
    plt.close(fig)


def test_norm_drift_shows_the_relative_norm_first_and_marks_the_absolute_as_not_comparable(tmp_path):
    fig = plot_curves.plot_norm_drift(runs_with_seeds(tmp_path, [0]), ARGS)
    ax_rel, ax_abs = fig.axes
    assert "/ its value at the first eval" in ax_rel.get_ylabel()
    assert ax_rel.get_position().width > ax_abs.get_position().width
    assert "NOT comparable across arms" in ax_abs.get_title()
    plt.close(fig)


@pytest.mark.parametrize("tokens, text", [(614_400, "614K"), (2.5e9, "2.5B"), (122_880, "123K"),
                                          (1_000_000, "1M"), (999_999, "1M"), (20_480, "20.5K"), (384, "384")])
def test_token_counts_read_in_k_m_b(tokens, text):
    assert fmt_tokens(tokens) == text


def test_titles_and_paper_comparisons_use_the_readable_token_count(tmp_path):
    runs = runs_with_seeds(tmp_path, [0])  # 400 steps x 1024 tokens
    assert "409.6" not in setting_label(runs) and "410K tokens" in setting_label(runs)
    assert "410K tokens < 2.5B" in setting_differences(runs, {"seeds": 1, "tokens": 2.5e9, "n_layer": 1,
                                                              "n_embd": 1})
