import Fleet
import Foundation

/// Refuses changes to GoReplay inside the data-sync window unless `--force`
/// (`--dry-run` changes nothing, so it is allowed and says so in its plan).
func refuseInsideDataSyncWindow(task: String, _ context: RunContext) throws(TaskRefusal) {
    guard !context.force, !context.dryRun else { return }
    let window = context.inventory.dataSync.window
    let now = context.time.now()
    guard window.contains(now) else { return }
    throw TaskRefusal(
        task: task,
        reason: "inside the data-sync window (\(window.describe(at: now))): GoReplay is stopped on purpose "
            + "while databases are dropped and restored, and replaying now causes errors",
        remedy: "wait until \(window.end) \(window.timeZoneName), or pass --force if the data sync has "
            + "finished or aborted")
}

/// `recover-goreplay`: the runbook's recovery as one safe, idempotent task.
///
/// Per host: read the marker, the service (first of the `goreplay` aliases
/// defined there) and the `goreplay` process count in one read-only command;
/// then, only if needed, leave the marker present and empty (atomic write,
/// owner and mode kept), start the service (or restart it when it claims to
/// run but no `goreplay` process exists), and wait until a process runs.
public struct RecoverGoReplayTask: DescribedTask {
    public let invocation: TaskInvocation
    /// Bound for the wait for a `goreplay` process after starting.
    public var processTimeout: Duration

    public init(
        invocation: TaskInvocation = TaskInvocation(name: "recover-goreplay"),
        processTimeout: Duration = .seconds(20)
    ) {
        self.invocation = invocation
        self.processTimeout = processTimeout
    }

    public static let descriptor = TaskDescriptor(
        name: "recover-goreplay", usage: "recover-goreplay",
        summary: "Make GoReplay healthy after a failed data sync: empty marker, service running.",
        details: """
            The runbook's recovery as one idempotent task. Refuses inside the data-sync window
            (inventory `data_sync.window`) unless `--force`. Per host it reads the marker
            (`data_sync.marker`), the GoReplay service (first of the `goreplay` aliases defined
            on the host, e.g. `goreplay` or the legacy upstart job `gor`) and the number of
            `goreplay` processes; then, only where needed, leaves the marker present and empty
            (atomic write, owner and mode kept; a missing marker is created with the directory's
            owner and mode 0644), starts the service (restarts it if it runs no `goreplay`
            process) and waits up to 20 s for a process. Reports per host what it found and did;
            a second run reports "healthy, nothing to do". `--dry-run` reads state and prints
            the plan without changing anything. Privileged steps use `sudo -n`.
            """, changesHosts: true)

    public var descriptor: TaskDescriptor { Self.descriptor }
    public var dryRunMode: DryRunMode { .readStateOnly }

    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        try refuseInsideDataSyncWindow(task: invocation.name, context)
    }

    /// What a host needs, decided from its state.
    struct Plan: Equatable {
        var writeMarker: Bool
        var serviceAction: ServiceAction?

        init(_ state: GoReplayHostState) {
            writeMarker = !state.marker.isEmpty
            if !state.serviceRunning {
                serviceAction = .start
            } else if state.processCount == 0 {
                serviceAction = .restart
            } else {
                serviceAction = nil
            }
        }

        var isEmpty: Bool { !writeMarker && serviceAction == nil }
    }

    func stateScript(for host: FleetHost, in inventory: Inventory) throws(ServiceNameError) -> String {
        GoReplayScripts.readState(
            marker: inventory.dataSync.marker,
            candidates: try serviceCandidates(goReplayServiceName, in: inventory),
            manager: inventory.serviceManager(for: host))
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        guard let script = try? stateScript(for: host, in: context.inventory) else { return [] }
        return [remoteCommand(script, sudo: true, on: host, in: context)]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let inventory = host.inventory
        let read = try await host.execute(try stateScript(for: host.host, in: inventory), sudo: true, echo: false)
        guard read.succeeded else {
            return outcome(of: read, on: host, message: "could not read state: " + (lastLine(of: read) ?? "no output"))
        }
        let state = try GoReplayHostState(parsing: read.stdout)
        guard let service = state.service else {
            let tried = inventory.services.candidates(for: goReplayServiceName).joined(separator: ", ")
            return .failed(
                status: serviceNotInstalledStatus,
                "no goreplay service (tried \(tried)) on this host; nothing changed (\(state.summary))")
        }
        let plan = Plan(state)
        if plan.isEmpty {
            return .ok("healthy, nothing to do (service \(service) running, \(processCountText(state.processCount)))")
        }
        if host.run.dryRun {
            var steps: [String] = []
            if plan.writeMarker { steps.append(markerPlan(state.marker, done: false)) }
            if let action = plan.serviceAction { steps.append(servicePlan(action, service, done: false)) }
            var message = "found \(state.summary); " + steps.joined(separator: "; ")
            if inventory.dataSync.window.contains(host.run.time.now()) && !host.run.force {
                message += " (inside the data-sync window: a real run needs --force)"
            }
            return .ok(message)
        }

        var script: [String] = []
        if plan.writeMarker { script.append(GoReplayScripts.writeMarker(inventory.dataSync.marker, content: "")) }
        if let action = plan.serviceAction {
            script.append(
                "( \(ServiceControl(manager: inventory.serviceManager(for: host.host)).command(action, service)) )")
        }
        script.append(GoReplayScripts.waitForProcesses(atLeastOne: true, timeout: processTimeout))
        // `&&`: a failed marker write or start stops the script with its own message.
        let act = try await host.execute(script.joined(separator: " && "), sudo: true, echo: false)
        var done: [String] = []
        if plan.writeMarker { done.append(markerPlan(state.marker, done: true)) }
        if let action = plan.serviceAction { done.append(servicePlan(action, service, done: true)) }
        let count = GoReplayScripts.processCount(in: act.stdout)
        if act.succeeded, let count {
            done.append(processCountText(count))
            return .ok(done.joined(separator: "; "), changed: true)
        }
        if act.sudoNeedsPassword { return outcome(of: act, on: host) }
        let reason: String
        if let count {
            reason =
                "no goreplay process after \(DurationText.format(processTimeout))"
                + " (\(processCountText(count))); check the service log"
        } else {
            reason = lastLine(of: act) ?? "exit \(act.exitStatus)"
        }
        return TaskOutcome(
            hostOutcome: act.succeeded ? .exited(status: 1) : act.outcome,
            message: "found \(state.summary); tried: \(done.joined(separator: "; ")); failed: \(reason)",
            changed: true)
    }

    private func markerPlan(_ marker: MarkerState, done: Bool) -> String {
        switch marker {
        case .missing: return done ? "marker was missing, created empty" : "would create the marker empty"
        case .present:
            return done ? "marker was \(marker.shownValue), cleared" : "would clear marker (\(marker.shownValue))"
        }
    }

    private func servicePlan(_ action: ServiceAction, _ service: ServiceName, done: Bool) -> String {
        switch (action, done) {
        case (.restart, false): return "would restart \(service) (running but no goreplay process)"
        case (.restart, true): return "service \(service) restarted (it ran no goreplay process)"
        case (_, false): return "would start \(service)"
        case (_, true): return "service \(service) started"
        }
    }
}

extension RecoverGoReplayTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { [descriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> RecoverGoReplayTask {
        try noArguments(invocation, usage: descriptor.usage)
        return RecoverGoReplayTask(invocation: invocation)
    }
}
