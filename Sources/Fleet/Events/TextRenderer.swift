import Foundation

/// Fabric-style text: `[host] out: …` / `[host] err: …` lines, per-host status lines and a final table.
///
/// Text that came from hosts (output, stderr lines, task messages) is shown through
/// `TerminalText.visible`, so a host cannot move the cursor, recolour the terminal or forge
/// another host's `[host] ok:` line with `\r` or escape sequences.
public struct TextRenderer: FleetEventRenderer {
    /// Whether to use ANSI colours (the CLI decides, e.g. only on a terminal).
    public var colour: Bool
    private var lines: OutputLineBuffer

    /// Creates a renderer.
    public init(colour: Bool = false, maximumLineBytes: Int = 64 * 1024) {
        self.colour = colour
        self.lines = OutputLineBuffer(maximumLineBytes: maximumLineBytes)
    }

    public mutating func render(_ event: FleetEvent) -> String {
        var out: [String] = []
        switch event {
        case .runStarted(let environment, let hosts, let tasks, _):
            out.append(
                paint("\(environment): \(hosts.count) host\(hosts.count == 1 ? "" : "s")", .bold)
                    + (hosts.isEmpty ? "" : " (\(hosts.joined(separator: ", ")))"))
            out.append("tasks: " + tasks.joined(separator: " "))
        case .taskStarted(let host, let task, let command, _):
            out.append(prefix(host) + "Executing task '\(task)'")
            if let command { out.append(prefix(host) + "run: \(command)") }
        case .output(let host, let stream, let bytes, _):
            for line in lines.append(bytes, host: host, stream: stream) {
                out.append(outputLine(host: host, stream: stream, line: line))
            }
        case .hostFinished(let result):
            for (stream, line) in lines.flush(host: result.host) {
                out.append(outputLine(host: result.host, stream: stream, line: line))
            }
            out.append(finishedLine(result))
        case .notice(let host, let message, _):
            // A multi-line notice (goreplay.config's file) keeps its lines, each with the host's prefix.
            for line in message.split(separator: "\n", omittingEmptySubsequences: false) {
                out.append((host.map(prefix) ?? "") + TerminalText.visible(String(line)))
            }
        case .summary(let summary):
            for pending in lines.flushAll() {
                out.append(outputLine(host: pending.host, stream: pending.stream, line: pending.line))
            }
            out.append(contentsOf: summaryTable(summary))
        }
        return out.isEmpty ? "" : out.joined(separator: "\n") + "\n"
    }

    /// The summary table and a closing line.
    public func summaryTable(_ summary: RunSummary) -> [String] {
        var rows: [[String]] = [["HOST"] + summary.tasks.map { $0.uppercased() } + ["EXIT", "TIME", "LAST STDERR"]]
        var failures: Set<Int> = []
        for host in summary.hosts {
            let results = summary.results.filter { $0.host == host }
            let cells = summary.tasks.map { task in
                results.last { $0.task == task }.map { $0.wasInterrupted ? "interrupted" : $0.outcome.description }
                    ?? "-"
            }
            let firstFailure = results.first { $0.outcome.isFailure }
            // "0" only when every task ran and succeeded; a host stopped or never reached has no exit.
            let completed = !results.isEmpty && results.allSatisfy(\.outcome.isSuccess)
            let exit = firstFailure.map { $0.outcome.exitStatus.map(String.init) ?? "-" } ?? (completed ? "0" : "-")
            let time = results.reduce(Duration.zero) { $0 + $1.duration }
            let stderr =
                firstFailure.map {
                    Self.clip(TerminalText.visible($0.lastStderrLine ?? Self.detail($0.outcome) ?? ""), to: 100)
                } ?? ""
            if firstFailure != nil { failures.insert(rows.count) }
            rows.append([host] + cells + [exit, DurationText.format(time), stderr])
        }
        let widths = rows.reduce(into: [Int](repeating: 0, count: rows[0].count)) { widths, row in
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var out = ["", paint("Summary (\(summary.environment), \(DurationText.format(summary.duration))):", .bold)]
        for (index, row) in rows.enumerated() {
            let padded = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            var line = padded.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            if index == 0 { line = paint(line, .bold) } else if failures.contains(index) { line = paint(line, .red) }
            out.append(line)
        }
        // Each host counted once: failed, else interrupted, else not run, else ok (as the JSON says).
        let failedHosts = Set(summary.failedHosts)
        var interrupted = 0
        var notRun = 0
        for host in summary.hosts where !failedHosts.contains(host) {
            let results = summary.results.filter { $0.host == host }
            if results.contains(where: \.wasInterrupted) {
                interrupted += 1
            } else if results.isEmpty || !results.allSatisfy(\.outcome.isSuccess) {
                notRun += 1
            }
        }
        let ok = summary.hosts.count - failedHosts.count - interrupted - notRun
        let code = summary.exitCode
        var closing =
            "\(summary.hosts.count) host\(summary.hosts.count == 1 ? "" : "s"): \(ok) ok, \(failedHosts.count) failed"
        if interrupted > 0 { closing += ", \(interrupted) interrupted" }
        if notRun > 0 { closing += ", \(notRun) skipped" }
        if summary.interrupted { closing += "; run interrupted" }
        closing += "; exit code \(code.rawValue)"
        out.append(paint(closing, code == .success ? .green : .red))
        return out
    }

    // MARK: - Pieces

    private enum Style: String {
        case bold = "1"
        case red = "31"
        case green = "32"
        case yellow = "33"
        case cyan = "36"
    }

    private func paint(_ text: String, _ style: Style) -> String {
        colour ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }

    private func prefix(_ host: String) -> String {
        paint("[\(host)]", .cyan) + " "
    }

    private func outputLine(host: String, stream: RemoteStream, line: String) -> String {
        prefix(host) + (stream == .stdout ? "out: " : paint("err:", .yellow) + " ") + TerminalText.visible(line)
    }

    private func finishedLine(_ result: HostTaskResult) -> String {
        let time = DurationText.format(result.duration)
        switch result.outcome {
        case .exited(0):
            return prefix(result.host) + paint("ok", .green) + ": \(result.task) (\(time))"
        case .skipped(let reason):
            return prefix(result.host) + "skipped: \(result.task) (\(TerminalText.visible(reason)))"
        default:
            var line = prefix(result.host) + paint("FAILED", .red) + ": \(result.task) \(result.outcome) after \(time)"
            let detail = Self.detail(result.outcome)
            if let detail { line += ": \(TerminalText.visible(detail))" }
            // The runner passes a connection failure's message as the last line too: say it once.
            if let stderr = result.lastStderrLine, !stderr.isEmpty, stderr != detail {
                line += " — \(Self.clip(TerminalText.visible(stderr), to: 200))"
            }
            return line
        }
    }

    /// The message carried by a connection failure.
    private static func detail(_ outcome: HostOutcome) -> String? {
        if case .connectionFailed(let message) = outcome { return message }
        return nil
    }

    private static func clip(_ text: String, to length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length - 1)) + "…"
    }
}

/// Making untrusted text safe to print on a terminal.
public enum TerminalText {
    /// `text` with every control character written out visibly: `\r` and `\n` by name, other
    /// C0 controls and DEL as `\x1b`-style hex, C1 controls, line/paragraph separators and
    /// bidirectional overrides as `\u{9b}`-style escapes. Tabs are kept. A backslash already in the
    /// text is left alone (escaping it too would garble every Windows path and regex a host prints).
    public static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            default:
                let hex = String(scalar.value, radix: 16)
                out +=
                    scalar.value < 0x80
                    ? "\\x" + (hex.count < 2 ? "0" + hex : hex)
                    : "\\u{" + hex + "}"
            }
        }
        return out
    }

    /// C0 (but not tab), DEL, C1, U+2028/U+2029 and the bidirectional embedding, override and
    /// isolate characters, which reorder what a terminal shows.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09: false
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}

extension HostTaskResult {
    /// The run was interrupted (Ctrl-C, SIGTERM) before or while this task ran on the host.
    public var wasInterrupted: Bool {
        if case .skipped(let reason) = outcome { return reason.hasPrefix("interrupted") }
        return false
    }
}
