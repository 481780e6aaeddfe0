"""The reference workload the default Limits are calibrated against (tests and bench use it).

A realistic agent tool call: import a dozen-plus stdlib modules, load a 5000-row CSV that came
in as an input file into sqlite3, run a group-by query and print a table, and write a JSON
summary file back.
"""

from __future__ import annotations

import csv
import io
import random

AGENT_SCRIPT = '''
import collections, csv, datetime, decimal, functools, hashlib, itertools, json, math, re
import sqlite3, statistics, string, textwrap

with open("sales.csv", newline="") as f:
    rows = list(csv.DictReader(f))
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE sales (day TEXT, region TEXT, product TEXT, qty INTEGER, price REAL)")
db.executemany(
    "INSERT INTO sales VALUES (:day, :region, :product, :qty, :price)",
    [dict(r, qty=int(r["qty"]), price=float(r["price"])) for r in rows],
)
query = """
    SELECT region, product, COUNT(*) AS n, SUM(qty) AS units, ROUND(SUM(qty * price), 2) AS revenue
    FROM sales GROUP BY region, product ORDER BY revenue DESC
"""
table = db.execute(query).fetchall()
width = max(len(r[0]) for r in table)
print(f"{'region':<{width}}  {'product':<8} {'n':>5} {'units':>7} {'revenue':>12}")
for region, product, n, units, revenue in table:
    print(f"{region:<{width}}  {product:<8} {n:>5} {units:>7} {revenue:>12,.2f}")
prices = [float(r["price"]) for r in rows]
days = sorted({datetime.date.fromisoformat(r["day"]) for r in rows})
by_region = collections.Counter(r["region"] for r in rows)
summary = {
    "rows": len(rows),
    "groups": len(table),
    "days": (days[-1] - days[0]).days + 1,
    "median_price": statistics.median(prices),
    "stdev_price": round(statistics.stdev(prices), 4),
    "top_region": by_region.most_common(1)[0][0],
    "total": str(decimal.Decimal(sum(r[4] for r in table)).quantize(decimal.Decimal("0.01"))),
    "digest": hashlib.sha256(json.dumps(table).encode()).hexdigest()[:12],
}
with open("summary.json", "w") as f:
    json.dump(summary, f, indent=2)
print(textwrap.shorten(json.dumps(summary), 200))
'''

REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("widget", "gadget", "gizmo", "doohick", "sprocket", "flange")


def sales_csv(rows: int = 5000, seed: int = 7) -> bytes:
    """A deterministic input CSV (day, region, product, qty, price) of `rows` rows."""
    rnd = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["day", "region", "product", "qty", "price"])
    for i in range(rows):
        day = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
        w.writerow([day, rnd.choice(REGIONS), rnd.choice(PRODUCTS), rnd.randint(1, 50), round(rnd.uniform(1, 200), 2)])
    return buf.getvalue().encode()


def agent_files() -> dict[str, bytes]:
    return {"sales.csv": sales_csv()}
