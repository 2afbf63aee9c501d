#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension DiffReport {
    /// The terminal summary: totals, the class and exact matrices, missing
    /// responses, and the endpoints (at most `endpointRows`, mismatching ones first).
    public func text(endpointRows: Int = 20) -> String {
        var lines: [String] = []
        lines.append(
            "goreplay report: \(files.count) file(s), \(records) records, \(skippedRecords) skipped as corrupt")
        lines.append(
            "requests \(requests): compared \(compared), mismatched \(mismatched) (\(Self.percent(mismatchRate))), no replayed response \(noReplayedResponse.reduce(0) { $0 + $1.count }), no original response \(noOriginalResponse), orphan responses \(orphanResponses)"
        )
        for reason in skippedReasons { lines.append("skipped: \(reason)") }
        if requests > 0, original.count == 0 {
            lines.append("note: no original responses (type 2): capture with --input-raw-track-response")
        }
        if requests > 0, replayed.count == 0 {
            lines.append(
                "note: no replayed responses (type 3): replay with --output-http-track-response and --output-file")
        }
        if evictedFromWindow > 0 {
            lines.append(
                "note: \(evictedFromWindow) requests left the join window (\(pendingWindow) pending) before both responses arrived"
            )
        }
        lines.append("")
        lines.append("status classes (original → replayed):")
        lines.append(contentsOf: classMatrix().map { "  " + $0 })
        let mismatchedPairs = statusPairs.filter { $0.original != $0.replayed }
        if !mismatchedPairs.isEmpty {
            lines.append("mismatching status pairs:")
            for pair in mismatchedPairs.prefix(15) {
                lines.append("  \(pair.original) → \(pair.replayed): \(pair.count)")
            }
        }
        if !noReplayedResponse.isEmpty {
            lines.append("no replayed response:")
            for cause in noReplayedResponse { lines.append("  \(cause.count)  \(cause.cause)") }
        }
        lines.append("")
        lines.append(
            "latency p50/p95/p99 ms: original \(Self.ms(original.p50))/\(Self.ms(original.p95))/\(Self.ms(original.p99)), replayed \(Self.ms(replayed.p50))/\(Self.ms(replayed.p95))/\(Self.ms(replayed.p99))"
        )
        if let body = bodyLengthDifferences {
            lines.append("2xx body lengths differing by more than \(body.threshold): \(body.count)")
            for example in body.examples.prefix(5) {
                lines.append("  \(example.request)  \(example.originalLength) → \(example.replayedLength) bytes")
            }
        }
        lines.append("")
        let rows = endpoints.sorted {
            ($0.mismatched + $0.noReplayedResponse, $0.requests) > ($1.mismatched + $1.noReplayedResponse, $1.requests)
        }
        let width = min(60, rows.prefix(endpointRows).map(\.endpoint.count).max() ?? 8)
        lines.append(
            Self.pad("endpoint", width)
                + "  requests  mismatch  no-reply  p50 ms orig→repl   p99 ms orig→repl  ratio p50")
        for row in rows.prefix(endpointRows) {
            var line = Self.pad(String(row.endpoint.prefix(width)), width)
            line += "  " + Self.left(String(row.requests), 8)
            line += "  " + Self.left(Self.percent(row.mismatchRate), 8)
            line += "  " + Self.left(String(row.noReplayedResponse), 8)
            func side(_ summary: LatencySummary, _ value: Double) -> String {
                summary.count == 0 ? "-" : Self.ms(value)
            }
            line +=
                "  " + Self.left("\(side(row.original, row.original.p50))→\(side(row.replayed, row.replayed.p50))", 17)
            line +=
                "  " + Self.left("\(side(row.original, row.original.p99))→\(side(row.replayed, row.replayed.p99))", 17)
            line += "  " + Self.left(row.ratioP50.map { Self.fixed($0, 2) + "×" } ?? "-", 9)
            lines.append(line)
            for pair in row.topMismatches {
                lines.append("    \(pair.original) → \(pair.replayed) ×\(pair.count), e.g. \(pair.example.prefix(100))")
            }
        }
        if endpoints.count > endpointRows {
            lines.append("(\(endpoints.count - endpointRows) more endpoints: use --json or --html)")
        }
        return lines.joined(separator: "\n")
    }

    /// The class matrix as rows: originals down, replayed across.
    func classMatrix() -> [String] {
        let originals = Array(Set(classPairs.map(\.original))).sorted()
        let replays = Array(Set(classPairs.map(\.replayed))).sorted()
        guard !originals.isEmpty else { return ["(nothing compared)"] }
        var rows = ["orig\\repl" + replays.map { Self.left($0, 9) }.joined()]
        for original in originals {
            var row = Self.pad(original, 9)
            for replayed in replays {
                let count = classPairs.first { $0.original == original && $0.replayed == replayed }?.count ?? 0
                row += Self.left(String(count), 9)
            }
            rows.append(row)
        }
        return rows
    }

    static func percent(_ fraction: Double) -> String { fixed(fraction * 100, 1) + "%" }
    static func ms(_ value: Double) -> String { fixed(value, value < 10 ? 2 : 1) }

    /// Fixed decimals without locale-dependent formatting.
    static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        let fraction = String(scaled % Int64(scale))
        let sign = value < 0 && scaled != 0 ? "-" : ""
        guard places > 0 else { return sign + String(whole) }
        return sign + String(whole) + "." + String(repeating: "0", count: places - fraction.count) + fraction
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func left(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    /// Pretty, key-sorted JSON.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
