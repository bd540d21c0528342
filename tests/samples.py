"""Small real programs in the six languages, each with a cursor (`‸`) where a completion makes sense: shared by
the CLI and LSP end-to-end tests."""

from __future__ import annotations

CURSOR = "‸"

GO = """package shapes

import "math"

// Area returns the area of a circle of radius r.
func Area(r float64) float64 {
\treturn math.Pi * r * r
}

// Perimeter returns the perimeter of a circle of radius r.
func Perimeter(r float64) float64 {
\t‸
}
"""

JAVASCRIPT = """// Shopping cart helpers.
const TAX = 0.2;

/** Total price of the items, tax included. */
function total(items) {
  const sum = items.reduce((acc, item) => acc + item.price, 0);
  ‸
}

module.exports = { total };
"""

C = """#include <stdio.h>

/* Print the numbers from 1 to n. */
void count(int n) {
    for (int i = 1; i <= n; i++) {
        ‸
    }
}
"""

JAVA = """package demo;

public class Greeter {
    private final String name;

    public Greeter(String name) {
        this.name = name;
    }

    /** Greets the person by name. */
    public String greet() {
        ‸
    }
}
"""

CPP = """#include <vector>

// The sum of the values.
int sum(const std::vector<int>& values) {
    int total = 0;
    for (int v : values) {
        ‸
    }
    return total;
}
"""

BY_EXTENSION = {".go": GO, ".js": JAVASCRIPT, ".c": C, ".java": JAVA, ".cpp": CPP}


def split(sample: str) -> tuple[str, int, int, int]:
    """(text without the cursor, offset, 0-based line, character) of the cursor in `sample`."""
    offset = sample.index(CURSOR)
    text = sample.replace(CURSOR, "")
    line = text.count("\n", 0, offset)
    return text, offset, line, offset - (text.rfind("\n", 0, offset) + 1)
