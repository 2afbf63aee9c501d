import Fleet
import Foundation

/// `data-sync.start` / `data-sync.finish`: what govuk-puppet's nightly crons
/// did on each GoReplay host (`echo 'true' > MARKER; initctl stop gor`, then
/// `echo '' > MARKER; initctl start gor`), with an atomic marker write and the
/// service resolved through the aliases. Lets operators and tests reproduce a
/// data sync. `finish` restarts replay, so like `recover-goreplay` it refuses
/// inside the window unless `--force`.
public struct DataSyncTask: DescribedTask {
    public enum Phase: String, Sendable, CaseIterable { case start, finish }

    public let invocation: TaskInvocation
    public let phase: Phase
    /// Bound for the wait until processes are gone (start) or running (finish).
    public var processTimeout: Duration

    public init(phase: Phase, invocation: TaskInvocation? = nil, processTimeout: Duration = .seconds(20)) {
        self.phase = phase
        self.invocation = invocation ?? TaskInvocation(name: "data-sync.\(phase.rawValue)")
        self.processTimeout = processTimeout
    }

    public static func descriptor(for phase: Phase) -> TaskDescriptor {
        switch phase {
        case .start:
            TaskDescriptor(
                name: "data-sync.start", usage: "data-sync.start",
                summary: "Do what the nightly data-sync start did: marker 'true', GoReplay stopped.",
                details: """
                    Writes `true` to the marker (atomically, owner and mode kept), stops the GoReplay
                    service under whatever name the host uses, and waits up to 20 s until no `goreplay`
                    process runs. For reproducing a data sync; `data-sync.finish` or `recover-goreplay`
                    undo it.
                    """, changesHosts: true)
        case .finish:
            TaskDescriptor(
                name: "data-sync.finish", usage: "data-sync.finish",
                summary: "Do what the nightly data-sync finish did: marker empty, GoReplay started.",
                details: """
                    Empties the marker (atomically, owner and mode kept), starts the GoReplay service
                    under whatever name the host uses, and waits up to 20 s for a `goreplay` process.
                    Refuses inside the data-sync window unless `--force`.
                    """, changesHosts: true)
        }
    }

    public var descriptor: TaskDescriptor { Self.descriptor(for: phase) }

    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        if phase == .finish { try refuseInsideDataSyncWindow(task: invocation.name, context) }
    }

    /// The marker content: the cron's `echo 'true'` for start, zero bytes for finish.
    var markerContent: String { phase == .start ? "true\n" : "" }

    func script(for host: FleetHost, in inventory: Inventory) throws(ServiceNameError) -> String {
        let candidates = try serviceCandidates(goReplayServiceName, in: inventory)
        let control = ServiceControl(manager: inventory.serviceManager(for: host))
        return [
            GoReplayScripts.writeMarker(inventory.dataSync.marker, content: markerContent),
            "( \(control.resolvedCommand(phase == .start ? .stop : .start, candidates: candidates)) )",
            GoReplayScripts.waitForProcesses(atLeastOne: phase == .finish, timeout: processTimeout),
        ].joined(separator: " && ")
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        guard let script = try? script(for: host, in: context.inventory) else { return [] }
        return [remoteCommand(script, sudo: true, on: host, in: context)]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(try script(for: host.host, in: host.inventory), sudo: true, echo: false)
        let count = GoReplayScripts.processCount(in: result.stdout)
        // The service command's own line, e.g. "gor stopped" or "gor already running".
        let serviceLine = result.stdout.split(separator: "\n")
            .first { !$0.hasPrefix("procs=") && !$0.contains(" is service ") }.map(String.init)
        let markerText = phase == .start ? "marker set to 'true'" : "marker emptied"
        var parts = [markerText]
        if let serviceLine { parts.append(serviceLine) }
        if let count { parts.append(processCountText(count)) }
        if result.succeeded {
            return .ok(parts.joined(separator: "; "), changed: true)
        }
        if result.sudoNeedsPassword || result.timedOut { return outcome(of: result, on: host) }
        if result.exitStatus == serviceNotInstalledStatus {
            return .failed(
                status: serviceNotInstalledStatus, lastLine(of: result) ?? "no goreplay service on this host")
        }
        // Without a process count the script stopped before the service step:
        // the marker may not have been written, so say only what failed.
        guard count != nil else {
            return TaskOutcome(
                hostOutcome: result.outcome, message: lastLine(of: result) ?? "exit \(result.exitStatus)",
                changed: false)
        }
        let reason =
            "goreplay processes did not \(phase == .start ? "stop" : "start") within \(DurationText.format(processTimeout))"
        return TaskOutcome(
            hostOutcome: result.succeeded ? .exited(status: 1) : result.outcome,
            message: parts.joined(separator: "; ") + "; failed: " + reason, changed: true)
    }
}

extension DataSyncTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { Phase.allCases.map(descriptor(for:)) }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> DataSyncTask {
        let phase: Phase = invocation.name == descriptor(for: .start).name ? .start : .finish
        try noArguments(invocation, usage: descriptor(for: phase).usage)
        return DataSyncTask(phase: phase, invocation: invocation)
    }
}
