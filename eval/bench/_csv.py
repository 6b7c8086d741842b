"""One CSV writer for every benchmark script: rows + machine, versions and commit columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidsieve.versions import environment

#: columns every benchmark CSV carries (filled from ``env`` where a row does not set them).
ENV_COLUMNS = ("machine", "versions", "commit")


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, Mapping) else v


def write_csv(rows: list[dict[str, Any]], path: str | Path, *, env: dict[str, Any] | None = None) -> Path:
    """Write ``rows`` to ``path`` (parent folders created) and return the path.

    Columns are the rows' keys in first-seen order (a row missing a key gets an empty cell),
    then ``machine``, ``versions`` (JSON objects) and ``commit`` from ``env`` (default:
    :func:`vidsieve.versions.environment`, measured now) for those columns the rows do not
    already have. A row's own value for such a column wins over ``env``.
    """
    env = environment() if env is None else env
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    fields += [c for c in ENV_COLUMNS if c not in fields]
    extra = {c: _cell(env.get(c, "unknown")) for c in ENV_COLUMNS}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**extra, **r})
    return out
