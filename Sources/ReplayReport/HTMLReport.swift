extension DiffReport {
    /// One self-contained page: inline style, inline SVG charts and a few
    /// lines of inline script to sort the endpoint table. Nothing is fetched.
    /// Every value from the capture is escaped.
    public func html(title: String = "goreplay report") -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
            <title>\(Self.escape(title))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#0b0c0c}
            h1{font-size:22px}h2{font-size:18px;margin-top:28px}
            table{border-collapse:collapse;margin:8px 0}
            th,td{border:1px solid #b1b4b6;padding:4px 8px;text-align:right}
            th{background:#f3f2f1}td.l,th.l{text-align:left}
            td.bad{background:#f6d7d2}td.ok{background:#cce2d8}
            #endpoints th{cursor:pointer}
            .charts{display:flex;gap:24px;flex-wrap:wrap}
            .muted{color:#505a5f}
            </style></head><body>
            <h1>\(Self.escape(title))</h1>

            """
        page +=
            "<p id=\"totals\">Requests \(requests): compared \(compared), mismatched \(mismatched) (\(Self.percent(mismatchRate))), "
        page +=
            "no replayed response \(noReplayedResponse.reduce(0) { $0 + $1.count }), no original response \(noOriginalResponse), "
        page += "orphan responses \(orphanResponses). Records \(records), skipped as corrupt \(skippedRecords).</p>\n"
        page += "<p class=\"muted\">Files: \(files.map(Self.escape).joined(separator: ", "))</p>\n"

        page +=
            "<h2>Status classes (original ↓, replayed →)</h2>\n"
            + matrixTable(id: "class-matrix", pairs: classPairs.map { ($0.original, $0.replayed, $0.count) })
        page +=
            "<h2>Status codes (original ↓, replayed →)</h2>\n"
            + matrixTable(
                id: "status-matrix", pairs: statusPairs.map { (String($0.original), String($0.replayed), $0.count) })

        if !noReplayedResponse.isEmpty {
            page +=
                "<h2>No replayed response</h2>\n<table id=\"missing\"><tr><th class=\"l\">cause</th><th>requests</th></tr>\n"
            for cause in noReplayedResponse {
                page += "<tr><td class=\"l\">\(Self.escape(cause.cause))</td><td>\(cause.count)</td></tr>\n"
            }
            page += "</table>\n"
        }

        page += "<h2>Latency distribution</h2>\n<div class=\"charts\">\n"
        page += chart(
            id: "chart-original", label: "original", summary: original, counts: distribution.map(\.original),
            colour: "#1d70b8")
        page += chart(
            id: "chart-replayed", label: "replayed", summary: replayed, counts: distribution.map(\.replayed),
            colour: "#d4351c")
        page += "</div>\n"

        if let body = bodyLengthDifferences {
            page +=
                "<h2>2xx bodies differing in length by more than \(Self.escape(body.threshold)): \(body.count)</h2>\n"
            page += "<table><tr><th class=\"l\">request</th><th>original bytes</th><th>replayed bytes</th></tr>\n"
            for example in body.examples {
                page +=
                    "<tr><td class=\"l\">\(Self.escape(example.request))</td><td>\(example.originalLength)</td><td>\(example.replayedLength)</td></tr>\n"
            }
            page += "</table>\n"
        }

        page +=
            "<h2>Endpoints</h2>\n<p class=\"muted\">Click a heading to sort.</p>\n<table id=\"endpoints\"><thead><tr>"
        for (index, heading) in [
            "endpoint", "requests", "mismatch %", "no reply", "p50 orig ms", "p50 repl ms", "p95 orig ms",
            "p95 repl ms", "p99 orig ms",
            "p99 repl ms", "ratio p50", "top mismatches",
        ].enumerated() {
            page += "<th\(index == 0 || index == 11 ? " class=\"l\"" : "") data-col=\"\(index)\">\(heading)</th>"
        }
        page += "</tr></thead><tbody>\n"
        for row in endpoints {
            let mismatches = row.topMismatches.map {
                "\($0.original)→\($0.replayed) ×\($0.count), e.g. \($0.example.prefix(120))"
            }
            page += "<tr><td class=\"l\">\(Self.escape(row.endpoint))</td><td>\(row.requests)</td>"
            page +=
                "<td class=\"\(row.mismatched > 0 ? "bad" : "ok")\">\(Self.fixed(row.mismatchRate * 100, 1))</td><td>\(row.noReplayedResponse)</td>"
            for (summary, value) in [
                (row.original, row.original.p50), (row.replayed, row.replayed.p50), (row.original, row.original.p95),
                (row.replayed, row.replayed.p95), (row.original, row.original.p99), (row.replayed, row.replayed.p99),
            ] {
                page += summary.count == 0 ? "<td>-</td>" : "<td>\(Self.ms(value))</td>"
            }
            page += "<td>\(row.ratioP50.map { Self.fixed($0, 2) } ?? "")</td>"
            page += "<td class=\"l\">\(mismatches.map(Self.escape).joined(separator: "<br>"))</td></tr>\n"
        }
        page += "</tbody></table>\n"
        page += """
            <script>
            (function () {
              var table = document.getElementById("endpoints");
              var body = table.tBodies[0];
              var direction = {};
              table.querySelectorAll("th").forEach(function (heading) {
                heading.addEventListener("click", function () {
                  var column = Number(heading.dataset.col);
                  direction[column] = -(direction[column] || 1);
                  var rows = Array.prototype.slice.call(body.rows);
                  rows.sort(function (a, b) {
                    var x = a.cells[column].textContent, y = b.cells[column].textContent;
                    var nx = parseFloat(x), ny = parseFloat(y);
                    var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
                    return order * direction[column];
                  });
                  rows.forEach(function (row) { body.appendChild(row); });
                });
              });
            })();
            </script>
            </body></html>

            """
        return page
    }

    private func matrixTable(id: String, pairs: [(String, String, Int)]) -> String {
        let originals = Array(Set(pairs.map(\.0))).sorted()
        let replays = Array(Set(pairs.map(\.1))).sorted()
        guard !originals.isEmpty else { return "<p id=\"\(id)\">Nothing compared.</p>\n" }
        var table = "<table id=\"\(id)\"><tr><th></th>"
        for replayed in replays { table += "<th>\(Self.escape(replayed))</th>" }
        table += "</tr>\n"
        for original in originals {
            table += "<tr><th>\(Self.escape(original))</th>"
            for replayed in replays {
                let count = pairs.first { $0.0 == original && $0.1 == replayed }?.2 ?? 0
                let style = count == 0 ? "" : original == replayed ? " class=\"ok\"" : " class=\"bad\""
                table += "<td\(style)>\(count)</td>"
            }
            table += "</tr>\n"
        }
        return table + "</table>\n"
    }

    /// A bar chart of one side's buckets (log-spaced latency on x).
    private func chart(id: String, label: String, summary: LatencySummary, counts: [Int], colour: String) -> String {
        let width = 480.0
        let height = 200.0
        let left = 40.0
        let bottom = 24.0
        var svg =
            "<figure><figcaption>\(label): \(summary.count) responses, p50 \(Self.ms(summary.p50)) ms, p95 \(Self.ms(summary.p95)) ms, p99 \(Self.ms(summary.p99)) ms</figcaption>\n"
        svg +=
            "<svg id=\"\(id)\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(label) latency distribution\">"
        svg +=
            "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width)\" y2=\"\(height - bottom)\" stroke=\"#0b0c0c\"/>"
        let peak = max(1, counts.max() ?? 1)
        if !counts.isEmpty {
            let barWidth = (width - left) / Double(counts.count)
            for (index, count) in counts.enumerated() where count > 0 {
                let barHeight = (height - bottom - 8) * Double(count) / Double(peak)
                svg +=
                    "<rect x=\(Self.quoted(left + Double(index) * barWidth)) y=\(Self.quoted(height - bottom - barHeight)) width=\(Self.quoted(max(1, barWidth - 0.5))) height=\(Self.quoted(barHeight)) fill=\"\(colour)\"><title>≤ \(Self.ms(distribution[index].upperMilliseconds)) ms: \(count)</title></rect>"
            }
            svg +=
                "<text x=\"\(left)\" y=\"\(height - 6)\" font-size=\"11\">\(Self.ms(distribution.first?.upperMilliseconds ?? 0)) ms</text>"
            svg +=
                "<text x=\"\(width - 4)\" y=\"\(height - 6)\" font-size=\"11\" text-anchor=\"end\">\(Self.ms(distribution.last?.upperMilliseconds ?? 0)) ms</text>"
        }
        svg += "<text x=\"2\" y=\"12\" font-size=\"11\">\(peak)</text>"
        return svg + "</svg></figure>\n"
    }

    private static func quoted(_ value: Double) -> String { "\"" + fixed(value, 1) + "\"" }

    static func escape<S: StringProtocol>(_ text: S) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}
