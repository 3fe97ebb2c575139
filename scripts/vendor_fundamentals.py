"""Write reduced copies of the SEC companyfacts files into the bundled replay folder.

Only the concepts `trading_assets.ingest.fundamentals.CONCEPTS` maps are kept, so the package stays
small while the files keep SEC's structure (a full file from data.sec.gov can replace one as is).

    python scripts/vendor_fundamentals.py [SOURCE_DIR] [TARGET_DIR]

SOURCE_DIR defaults to `../shared/data/fundamentals` beside the checkout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading_assets.ingest.fundamentals import reduce_companyfacts  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "fundamentals"
DEFAULT_TARGET = ROOT / "trading_assets" / "data" / "replay" / "fundamentals"


def vendor(source: Path, target: Path) -> list[tuple[str, int, int]]:
    """Reduce every `CIK*.json` in `source` into `target`; (name, bytes in, bytes out) each."""
    target.mkdir(parents=True, exist_ok=True)
    sizes = []
    paths = sorted(source.glob("CIK*.json"))
    if not paths:
        raise SystemExit(f"no CIK*.json in {source}")
    for path in paths:
        reduced = reduce_companyfacts(json.loads(path.read_text()))
        out = target / path.name
        out.write_text(json.dumps(reduced, separators=(",", ":")))
        sizes.append((path.name, path.stat().st_size, out.stat().st_size))
    return sizes


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    target = Path(argv[2]) if len(argv) > 2 else DEFAULT_TARGET
    total = 0
    for name, before, after in vendor(source, target):
        total += after
        print(f"{name}: {before:,} -> {after:,} bytes")
    print(f"total {total:,} bytes in {target}")


if __name__ == "__main__":
    main(sys.argv)
