"""statsmodels' McNemar test, for test/evaluation.test.ts.

Reads [[b, c], ...] (the discordant counts) on stdin and prints, for each, the exact
(binomial) test's p-value and the chi-square test's statistic and p-value with continuity
correction, as statsmodels.stats.contingency_tables.mcnemar gives them.
"""
import json
import sys

import statsmodels
from statsmodels.stats.contingency_tables import mcnemar

assert statsmodels.__version__ == sys.argv[1], statsmodels.__version__
out = []
for b, c in json.load(sys.stdin):
    table = [[0, b], [c, 0]]
    exact = mcnemar(table, exact=True)
    chi = mcnemar(table, exact=False, correction=True) if b + c > 0 else None
    out.append({
        "exactPValue": float(exact.pvalue),
        "chiSquare": None if chi is None else float(chi.statistic),
        "chiSquarePValue": None if chi is None else float(chi.pvalue),
    })
print(json.dumps(out))
