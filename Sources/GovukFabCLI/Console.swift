import Fleet
import FleetTasks
import Foundation
import Synchronization

/// Where the console's text goes and where answers come from: the process's stdout, stderr
/// and stdin in the binary, buffers in tests (as swiftly's output handlers and input provider).
struct ConsoleIO: Sendable {
    /// Text for stdout, written whole.
    var output: @Sendable (String) -> Void
    /// Text for stderr, written whole.
    var errorOutput: @Sendable (String) -> Void
    /// One line of input without its newline; nil at end of input.
    var readLine: @Sendable () -> String?

    /// File descriptors 1, 2 and 0.
    static let standard = ConsoleIO(
        output: { ConsoleIO.write($0, to: STDOUT_FILENO) },
        errorOutput: { ConsoleIO.write($0, to: STDERR_FILENO) },
        readLine: { Swift.readLine(strippingNewline: true) })

    /// Writes all of `text`, retrying short writes; a closed pipe is ignored
    /// (SIGPIPE is ignored process-wide).
    static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// All terminal output of one run. Events are rendered and written under one
/// lock, so lines from two hosts never mix; errors go to stderr as one line.
final class Console: Sendable {
    private enum Renderer {
        case text(TextRenderer, inventory: InventoryOrigin?)
        case json(JSONLinesRenderer)
    }

    private let state: Mutex<Renderer>
    /// The progress line shown at the bottom of a terminal.
    private let progress = Mutex(Progress())
    private let io: ConsoleIO
    let json: Bool
    let colour: Bool
    /// Only on a terminal, and never with --json.
    let showsProgress: Bool

    init(json: Bool, colour: Invocation.Colour, local: LocalEnvironment, io: ConsoleIO = .standard) {
        self.json = json
        self.io = io
        let dumb = local.variables["TERM"] == "dumb"
        let useColour =
            !json && colour == .auto && local.stdoutIsTerminal && local.variables["NO_COLOR"] == nil && !dumb
        self.colour = useColour
        self.showsProgress = !json && local.stdoutIsTerminal && !dumb
        if json {
            state = Mutex(.json(JSONLinesRenderer()))
        } else {
            state = Mutex(.text(TextRenderer(colour: useColour), inventory: nil))
        }
    }

    /// The inventory file named in the run header (text) or `run_started` (JSON).
    func use(inventory origin: InventoryOrigin) {
        state.withLock { renderer in
            switch renderer {
            case .text(let text, _): renderer = .text(text, inventory: origin)
            case .json(var json):
                json.inventory = origin
                renderer = .json(json)
            }
        }
    }

    func emit(_ event: FleetEvent) {
        state.withLock { renderer in
            let text = Console.render(event, with: &renderer)
            guard showsProgress else {
                if !text.isEmpty { io.output(text) }
                return
            }
            // Erase the progress line, print, and draw it again below.
            let line = progress.withLock { progress in
                progress.update(with: event)
                return progress.line
            }
            io.output("\r\u{1B}[K" + text + (line ?? ""))
        }
    }

    private static func render(_ event: FleetEvent, with renderer: inout Renderer) -> String {
        switch renderer {
        case .text(var text, let inventory):
            var out = text.render(event)
            renderer = .text(text, inventory: inventory)
            // The header names the inventory file: it decided which hosts are touched.
            if case .runStarted = event, let inventory { out += "inventory: \(visible(inventory.description))\n" }
            return out
        case .json(var json):
            let out = json.render(event)
            renderer = .json(json)
            return out
        }
    }

    /// Control characters in a path shown as `\u{…}`, so a file name cannot rewrite the terminal.
    static func visible(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Prints `message` as `govuk-fab: error: …` (or a JSON error event) and
    /// returns `code` for the caller to exit with.
    func fail(_ message: String, code: FleetExitCode) -> Int32 {
        if json {
            io.output(JSONLines.line(ErrorEvent(message: message, exitCode: code), time: Date()))
        }
        io.errorOutput("govuk-fab: error: \(message)\n")
        return code.rawValue
    }

    func warn(_ message: String) {
        io.errorOutput("govuk-fab: warning: \(message)\n")
    }

    /// A line on stderr that is neither a warning nor an error (`govuk-fab: …`).
    func note(_ message: String) {
        io.errorOutput("govuk-fab: \(message)\n")
    }

    /// Asks on the terminal; only "yes" proceeds.
    func confirm(_ prompt: String) -> Bool {
        io.errorOutput(prompt)
        guard let answer = io.readLine() else { return false }
        return answer.trimmingCharacters(in: .whitespaces).lowercased() == "yes"
    }

    // MARK: Local (host-less) output

    func hostListing(_ hosts: [FleetHost]) -> [String] {
        let sorted = Inventory.sortedForListing(hosts)
        if json {
            let now = Date()
            return sorted.map { Console.jsonLine(HostEvent($0), time: now) }
        }
        return sorted.map(\.name)
    }

    func classListing(_ summary: ClassSummary) -> [String] {
        if json {
            let now = Date()
            return summary.puppetClasses.map {
                Console.jsonLine(ClassEvent(kind: "puppet_class", name: $0.name, hosts: $0.hostCount), time: now)
            }
                + summary.nodeClasses.map {
                    Console.jsonLine(ClassEvent(kind: "node_class", name: $0.name, hosts: $0.hostCount), time: now)
                }
        }
        var lines = ["Node classes (class:NAME):"]
        lines += summary.nodeClasses.map { "  \($0.name) (\($0.hostCount) host\($0.hostCount == 1 ? "" : "s"))" }
        lines.append("Puppet classes (puppet_class:NAME):")
        lines += summary.puppetClasses.map { "  \($0.name) (\($0.hostCount) host\($0.hostCount == 1 ? "" : "s"))" }
        return lines
    }

    func helpText(_ descriptor: TaskDescriptor) -> [String] {
        if json {
            return [
                Console.jsonLine(
                    TaskEvent(
                        name: descriptor.name, usage: descriptor.usage, summary: descriptor.summary,
                        changesHosts: descriptor.changesHosts, source: descriptor.source,
                        details: descriptor.details.isEmpty ? nil : descriptor.details), time: Date())
            ]
        }
        var lines = ["\(descriptor.usage)", "  \(descriptor.summary)"]
        if !descriptor.details.isEmpty {
            lines += descriptor.details.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
        }
        lines.append(
            "  \(descriptor.changesHosts ? "changes hosts (asks for confirmation where the environment requires it)" : "read-only")"
        )
        if descriptor.source != "built-in" { lines.append("  defined in \(descriptor.source)") }
        return lines
    }

    func emitLocal(_ lines: [String]) {
        guard !lines.isEmpty else { return }
        io.output(lines.joined(separator: "\n") + "\n")
    }

    func printTaskList(_ descriptors: [TaskDescriptor]) {
        if json {
            let now = Date()
            emitLocal(
                descriptors.map {
                    Console.jsonLine(
                        TaskEvent(
                            name: $0.name, usage: $0.usage, summary: $0.summary,
                            changesHosts: $0.changesHosts, source: $0.source), time: now)
                })
            return
        }
        let width = descriptors.map(\.usage.count).max() ?? 0
        var lines = ["Available tasks:", ""]
        // Grouped by module as `fab -l` showed fabric-scripts: `puppet.disable` under puppet.
        for (module, tasks) in TaskDescriptor.groupedByModule(descriptors) {
            if !module.isEmpty { lines += ["", "  \(module)"] }
            lines += tasks.map {
                "    " + $0.usage.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.summary
            }
        }
        lines += [
            "", "Selectors: puppet_class:NAME[,NAME] class:NAME node_type:NAME application:APP all, and -H HOSTS",
        ]
        emitLocal(lines)
    }

    // MARK: Plumbing

    /// One event for ``emitLocal(_:)``, which adds the newline.
    static func jsonLine(_ event: some JSONLineEvent, time: Date) -> String {
        String(JSONLines.line(event, time: time).dropLast())
    }
}

/// Counts for the terminal's progress line: "[12/50 host-tasks done, 1 failed]".
struct Progress: Sendable {
    var total = 0
    var done = 0
    var failed = 0
    var finished = false

    mutating func update(with event: FleetEvent) {
        switch event {
        case .runStarted(_, let hosts, let tasks, _): total = hosts.count * max(1, tasks.count)
        case .hostFinished(let result):
            done += 1
            if result.outcome.isFailure { failed += 1 }
        case .summary: finished = true
        default: break
        }
    }

    var line: String? {
        guard total > 0, !finished else { return nil }
        return "[\(done)/\(total) done\(failed > 0 ? ", \(failed) failed" : "")]"
    }
}
