import Fleet
import Foundation
import SSHTransport

/// The login user the runner will use for `host` (as its connection pool does).
func loginUser(for host: Fleet.Host, in inventory: Inventory) -> String {
    inventory.user(for: host) ?? ProcessInfo.processInfo.environment["USER"] ?? "root"
}

/// The exact remote command `HostContext.execute(_:sudo:)` sends, for `--dry-run`.
func remoteCommand(_ command: String, sudo: Bool, on host: Fleet.Host, in inventory: Inventory) -> String {
    sudo && loginUser(for: host, in: inventory) != "root" ? HostContext.sudoCommand(command) : command
}

/// The one-line message for a host whose sudo wants a password.
func sudoPasswordMessage(_ host: HostContext) -> String {
    let user = loginUser(for: host.host, in: host.inventory)
    return "sudo on \(host.host.name) wants a password for '\(user)'; govuk-fab never types one: "
        + "give '\(user)' passwordless sudo (NOPASSWD) or connect as a user who has it"
}

/// The outcome of a finished remote command, with the sudo-password case
/// named rather than left as "exit 1".
func outcome(of result: RemoteResult, on host: HostContext, message: String? = nil, changed: Bool = false) -> TaskOutcome {
    if result.sudoNeedsPassword {
        return TaskOutcome(outcome: result.outcome, message: sudoPasswordMessage(host))
    }
    if result.timedOut {
        // The limit the operator set, not the wall time (which adds the kill grace and any local slack).
        let limit = DurationText.format(result.timeoutLimit ?? result.duration)
        return TaskOutcome(outcome: result.outcome, message: "timed out at its \(limit) limit; the command was stopped")
    }
    return TaskOutcome(outcome: result.outcome, message: message, changed: changed && result.succeeded)
}

/// `do:CMD` and `sdo:CMD`: the operator's own command, quoted exactly once
/// (the remote login shell runs it as written; `sdo` wraps it in
/// `sudo -n -- /bin/sh -c '…'`, which never prompts).
public struct ShellCommandTask: FleetTask {
    public let invocation: TaskInvocation
    /// The command as the operator wrote it.
    public let command: String
    /// `sdo`: run through sudo.
    public let sudo: Bool

    public init(invocation: TaskInvocation, command: String, sudo: Bool) {
        self.invocation = invocation
        self.command = command
        self.sudo = sudo
    }

    /// An arbitrary command may change anything.
    public var changesHosts: Bool { true }

    public func plannedCommands(on host: Fleet.Host, context: RunContext) -> [String] {
        [remoteCommand(command, sudo: sudo, on: host, in: context.inventory)]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(command, sudo: sudo)
        return outcome(of: result, on: host)
    }
}

/// `app.start|stop|restart|reload|status:NAME` through the host's service
/// manager. NAME is resolved through the inventory's aliases, and on each host
/// the first candidate defined there is used (so `app.start:goreplay` reaches
/// the legacy upstart job `gor`, which Fabric's `service goreplay start` did not).
public struct ServiceTask: FleetTask {
    public let invocation: TaskInvocation
    public let action: ServiceAction
    /// Names to try on each host, in order.
    public let candidates: [ServiceName]

    public init(invocation: TaskInvocation, action: ServiceAction, candidates: [ServiceName]) {
        self.invocation = invocation
        self.action = action
        self.candidates = candidates
    }

    public var changesHosts: Bool { action.changesHosts }

    func script(for host: Fleet.Host, in inventory: Inventory) -> String {
        ServiceControl(manager: inventory.serviceManager(for: host)).resolvedCommand(action, candidates: candidates)
    }

    public func plannedCommands(on host: Fleet.Host, context: RunContext) -> [String] {
        [remoteCommand(script(for: host, in: context.inventory), sudo: true, on: host, in: context.inventory)]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(script(for: host.host, in: host.inventory), sudo: true)
        if action == .status && result.exitStatus == 3 && !result.timedOut && result.exitSignal == nil {
            // LSB "not running": the status query itself worked.
            return .ok("not running")
        }
        if result.exitStatus == serviceNotInstalledStatus {
            let tried = candidates.map(\.rawValue).joined(separator: ", ")
            return .failed(status: serviceNotInstalledStatus, "no service \(tried) on this host")
        }
        return outcome(of: result, on: host, message: action == .status && result.succeeded ? "running" : nil,
                       changed: action.changesHosts)
    }
}
