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
public struct CheckGoReplayTask: FleetTask {
    public let invocation: TaskInvocation
    /// Fewer processes than this is CRITICAL (`-c 1:`).
    public var minimumProcesses: Int

    public init(invocation: TaskInvocation = TaskInvocation(name: "check-goreplay"), minimumProcesses: Int = 1) {
        self.invocation = invocation
        self.minimumProcesses = minimumProcesses
    }

    public var changesHosts: Bool { false }

    public func plannedCommands(on host: Fleet.Host, context: RunContext) -> [String] {
        [GoReplayScripts.countProcesses()]
    }

    public func outcomeWithoutConnecting(on host: Fleet.Host, context: RunContext) -> TaskOutcome? {
        let window = context.inventory.dataSync.window
        guard !context.force, window.contains(context.time.now()) else { return nil }
        return TaskOutcome(outcome: .exited(status: 0),
                           message: "PROCS OK: data sync in progress (\(window)); goreplay is stopped on purpose, not checked",
                           checkStatus: .ok)
    }

    /// The plugin's line for `count` processes, e.g.
    /// `PROCS OK: 1 process with command name 'goreplay' | procs=1;;1:;0;`.
    public func pluginLine(count: Int) -> (CheckStatus, String) {
        let status: CheckStatus = count >= minimumProcesses ? .ok : .critical
        let noun = count == 1 ? "process" : "processes"
        let line = "PROCS \(status): \(count) \(noun) with command name '\(goReplayProcessName)'"
            + " | procs=\(count);;\(minimumProcesses):;0;"
        return (status, line)
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(GoReplayScripts.countProcesses(), echo: false)
        // grep -c exits 1 when it counts 0; the count on stdout is what matters.
        guard let count = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)),
              !result.timedOut, result.exitSignal == nil else {
            let reason = lastLine(of: result) ?? "no output"
            return TaskOutcome(outcome: .exited(status: CheckStatus.unknown.rawValue),
                               message: "PROCS UNKNOWN: could not count processes: \(reason)", checkStatus: .unknown)
        }
        let (status, line) = pluginLine(count: count)
        return TaskOutcome(outcome: .exited(status: status.rawValue), message: line, checkStatus: status)
    }

    /// The worst host status; hosts with no check result (unreachable,
    /// skipped, interrupted) count as UNKNOWN.
    public func exitStatus(for outcomes: [TaskOutcome]) -> Int32? {
        outcomes.map { $0.checkStatus ?? .unknown }.max()?.rawValue ?? CheckStatus.unknown.rawValue
    }
}
