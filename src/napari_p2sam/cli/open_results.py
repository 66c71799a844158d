"""Open one item of a batch in napari: its input, its labels and the frames to review first.

DIR: the --out folder of `napari-p2sam batch`; ITEM: an item's name (the
first column of DIR/report.csv). The flagged frames (an empty mask, or a
retrieval score above Q3 + 1.5 × IQR of the object's scores in the item;
docs/scale.md) are printed and listed in the scores dock, beside the scores
of every frame; the viewer starts on the first of them. Input and labels are
read lazily, a frame when napari shows it.
"""

from __future__ import annotations

import argparse

from ..io.paths import user_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=user_path, help="the --out folder of napari-p2sam batch")
    parser.add_argument("item", help="the item's name: the first column of DIR/report.csv")


def run(args: argparse.Namespace) -> int:
    from ..batch.report import read_item_results

    results = read_item_results(args.dir, args.item)
    if results.flagged:
        print(f"{results.name}: {len(results.flagged)} flagged frame(s): {', '.join(map(str, results.flagged))}")
    else:
        print(f"{results.name}: no flagged frame ({results.status}, {len(results.records)} record(s))")
    import napari

    from ..launch import open_results

    open_results(results)
    napari.run()
    return 0
