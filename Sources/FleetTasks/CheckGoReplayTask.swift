import Fleet
import Foundation

/// `check-goreplay`: GOV.UK's Icinga check `check_nrpe!check_proc_running!goreplay`
/// (`check_procs -c 1: -C goreplay`) as a task. Each host's message is the
/// line the plugin prints; the run's exit status is the worst host's plugin
/// status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN for unreachable hosts).
///
/// Inside the data-sync window every host is OK with "data sync in progress"
/// and no host is contacted, as Icinga runs the check only in the
/// `not_data_sync` period; `--force` checks anyway.
///
/// With `metrics=PORT` (goreplay's `--metrics 127.0.0.1:PORT`), a running
/// goreplay is also scraped twice, `interval` seconds apart: requests
/// captured but none replayed in between is WARNING ("running but replaying
/// nothing"), and so is a metrics endpoint that does not answer.
public struct CheckGoReplayTask: DescribedTask {
    public let invocation: TaskInvocation
    /// Fewer processes than this is CRITICAL (`-c 1:`).
    public var minimumProcesses: Int
    public var metrics: MetricsProbe?

    /// Where and how long to watch goreplay's `/metrics` on the host.
    public struct MetricsProbe: Sendable, Equatable {
        public var port: Int
        public var intervalSeconds: Int

        public init(port: Int, intervalSeconds: Int = 10) {
            self.port = port
            self.intervalSeconds = intervalSeconds
        }
    }

    public init(
        invocation: TaskInvocation = TaskInvocation(name: "check-goreplay"), minimumProcesses: Int = 1,
        metrics: MetricsProbe? = nil
    ) {
        self.invocation = invocation
        self.minimumProcesses = minimumProcesses
        self.metrics = metrics
    }

    public static let descriptor = TaskDescriptor(
        name: "check-goreplay", usage: "check-goreplay[:metrics=PORT,interval=SECONDS]",
        summary: "Icinga's GoReplay check: check_procs -c 1: -C goreplay on each host.",
        details: """
            Prints per host the line `check_procs -c 1: -C goreplay` prints, e.g.
            `PROCS OK: 1 process with command name 'goreplay' | procs=1;;1:;0;`, counting
            processes by command name as the plugin does. Exit status is the worst host's:
            0 OK, 2 CRITICAL, 3 UNKNOWN (unreachable host). Inside the data-sync window every
            host is OK with "data sync in progress" and no host is contacted (Icinga does not
            run the check then); `--force` checks anyway. Read-only.
            With `metrics=PORT` (goreplay run with `--metrics 127.0.0.1:PORT`) a running
            goreplay's `/metrics` is also read twice, `interval` seconds apart (default 10):
            requests captured but none replayed in between, or no metrics, is WARNING (1).
            """, changesHosts: false)

    public var descriptor: TaskDescriptor { Self.descriptor }

    static var usage: String { descriptor.usage }

    /// `check-goreplay`, or with `metrics=PORT` (1-65535) and `interval=SECONDS` (1-300, default 10).
    static func parse(_ invocation: TaskInvocation) throws(TaskError) -> CheckGoReplayTask {
        if let extra = invocation.positional.first {
            throw TaskError(
                word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: [extra]))
        }
        var port: Int?
        var interval = 10
        for keyword in invocation.keywords {
            switch keyword.name {
            case "metrics":
                guard let value = Int(keyword.value), (1...65535).contains(value) else {
                    throw TaskError(
                        word: invocation.raw,
                        problem: .invalidValue(
                            task: invocation.name, keyword: "metrics", value: keyword.value,
                            expected: "a port from 1 to 65535"))
                }
                port = value
            case "interval":
                guard let value = Int(keyword.value), (1...300).contains(value) else {
                    throw TaskError(
                        word: invocation.raw,
                        problem: .invalidValue(
                            task: invocation.name, keyword: "interval", value: keyword.value,
                            expected: "seconds from 1 to 300"))
                }
                interval = value
            default:
                throw TaskError(
                    word: invocation.raw,
                    problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
            }
        }
        if port == nil, invocation.keywords.contains(where: { $0.name == "interval" }) {
            throw TaskError(word: invocation.raw, problem: .missingArgument(task: invocation.name, usage: usage))
        }
        return CheckGoReplayTask(
            invocation: invocation, metrics: port.map { MetricsProbe(port: $0, intervalSeconds: interval) })
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        [GoReplayScripts.countProcesses()] + (metrics.map { [Self.scrapeScript($0)] } ?? [])
    }

    /// Two scrapes of the two counters, each after a `scrape N` line; a
    /// failed one prints `unavailable`.
    static func scrapeScript(_ probe: MetricsProbe) -> String {
        let url = "http://127.0.0.1:\(probe.port)/metrics"
        return "for n in 1 2; do if [ $n = 2 ]; then sleep \(probe.intervalSeconds); fi; echo \"scrape $n\"; "
            + "curl -fsS --max-time 5 \(url) 2>/dev/null | grep -E '^goreplay_requests_(captured|replayed)_total ' || echo unavailable; done"
    }

    /// The two scrapes' counters, or nil unless both scrapes gave both
    /// counters as finite non-negative numbers (the host's output is not trusted).
    static func parseScrapes(_ output: String) -> [(captured: Double, replayed: Double)]? {
        var scrapes: [[String: Double]] = []
        for line in output.split(separator: "\n").prefix(20) {
            if line.hasPrefix("scrape ") {
                scrapes.append([:])
                continue
            }
            let fields = line.split(separator: " ")
            guard fields.count == 2, !scrapes.isEmpty, let value = Double(fields[1]), value.isFinite, value >= 0,
                value < 1e18
            else { continue }
            scrapes[scrapes.count - 1][String(fields[0])] = value
        }
        let pairs = scrapes.compactMap { scrape -> (Double, Double)? in
            guard let captured = scrape["goreplay_requests_captured_total"],
                let replayed = scrape["goreplay_requests_replayed_total"]
            else {
                return nil
            }
            return (captured, replayed)
        }
        return scrapes.count == 2 && pairs.count == 2 ? pairs : nil
    }

    public func outcomeWithoutConnecting(on host: FleetHost, context: RunContext) -> TaskOutcome? {
        let window = context.inventory.dataSync.window
        guard !context.force, window.contains(context.time.now()) else { return nil }
        return TaskOutcome(
            hostOutcome: .exited(status: 0),
            message: "PROCS OK: data sync in progress (\(window)); goreplay is stopped on purpose, not checked",
            checkStatus: .ok)
    }

    /// The plugin's line for `count` processes, e.g.
    /// `PROCS OK: 1 process with command name 'goreplay' | procs=1;;1:;0;`.
    public func pluginLine(count: Int) -> (CheckStatus, String) {
        let status: CheckStatus = count >= minimumProcesses ? .ok : .critical
        let noun = count == 1 ? "process" : "processes"
        let line =
            "PROCS \(status): \(count) \(noun) with command name '\(goReplayProcessName)'"
            + " | procs=\(count);;\(minimumProcesses):;0;"
        return (status, line)
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(GoReplayScripts.countProcesses(), echo: false)
        // grep -c exits 1 when it counts 0; the count on stdout is what matters.
        guard let count = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)),
            !result.timedOut, result.exitSignal == nil
        else {
            let reason = lastLine(of: result) ?? "no output"
            return TaskOutcome(
                hostOutcome: .exited(status: CheckStatus.unknown.rawValue),
                message: "PROCS UNKNOWN: could not count processes: \(reason)", checkStatus: .unknown)
        }
        let (status, line) = pluginLine(count: count)
        guard status == .ok, let metrics else {
            return TaskOutcome(hostOutcome: .exited(status: status.rawValue), message: line, checkStatus: status)
        }
        let scraped = try await host.execute(Self.scrapeScript(metrics), echo: false)
        let (metricsStatus, note) = Self.judge(Self.parseScrapes(scraped.stdout), probe: metrics)
        let text = line.replacingOccurrences(of: "PROCS OK:", with: "PROCS \(metricsStatus):").replacingOccurrences(
            of: " | ", with: ", \(note) | ")
        return TaskOutcome(
            hostOutcome: .exited(status: metricsStatus.rawValue), message: text, checkStatus: metricsStatus)
    }

    /// WARNING when the metrics are missing or show captured requests and no
    /// replays between the scrapes.
    static func judge(_ scrapes: [(captured: Double, replayed: Double)]?, probe: MetricsProbe) -> (CheckStatus, String)
    {
        guard let scrapes else { return (.warning, "metrics on 127.0.0.1:\(probe.port) unavailable") }
        let captured = Int(max(0, scrapes[1].captured - scrapes[0].captured))
        let replayed = Int(max(0, scrapes[1].replayed - scrapes[0].replayed))
        if captured > 0 && replayed == 0 {
            return (
                .warning,
                "running but replaying nothing (\(captured) captured, 0 replayed in \(probe.intervalSeconds)s)"
            )
        }
        return (.ok, "\(replayed) replayed, \(captured) captured in \(probe.intervalSeconds)s")
    }

    /// The worst host status; hosts with no check result (unreachable,
    /// skipped, interrupted) count as UNKNOWN.
    public func exitStatus(for outcomes: [TaskOutcome]) -> Int32? {
        outcomes.map { $0.checkStatus ?? .unknown }.max()?.rawValue ?? CheckStatus.unknown.rawValue
    }
}

extension CheckGoReplayTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { [descriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> CheckGoReplayTask {
        try parse(invocation)
    }
}
