import Fleet
import Foundation
import SSHTransport

/// The exact remote command `HostContext.execute(_:sudo:)` sends, for `--dry-run`: the login user
/// is the one the run uses (ssh_config's `User` included), so sudo shows exactly where it would run.
func remoteCommand(_ command: String, sudo: Bool, on host: FleetHost, in context: RunContext) -> String {
    sudo && context.loginUser(for: host) != "root" ? HostContext.sudoCommand(command) : command
}

/// The one-line message for a host whose sudo wants a password.
func sudoPasswordMessage(_ host: HostContext) -> String {
    let user = host.user
    return "sudo on \(host.host.name) wants a password for '\(user)'; govuk-fab never types one: "
        + "give '\(user)' passwordless sudo (NOPASSWD) or connect as a user who has it"
}

/// The outcome of a finished remote command, with the sudo-password case
/// named rather than left as "exit 1".
func outcome(of result: RemoteResult, on host: HostContext, message: String? = nil, changed: Bool = false)
    -> TaskOutcome
{
    if result.sudoNeedsPassword {
        return TaskOutcome(hostOutcome: result.outcome, message: sudoPasswordMessage(host))
    }
    if result.timedOut {
        // The limit the operator set, not the wall time (which adds the kill grace and any local slack).
        let limit = DurationText.format(result.timeoutLimit ?? result.duration)
        return TaskOutcome(
            hostOutcome: result.outcome, message: "timed out at its \(limit) limit; the command was stopped")
    }
    return TaskOutcome(hostOutcome: result.outcome, message: message, changed: changed && result.succeeded)
}

/// `do:CMD` and `sdo:CMD`: the operator's own command, quoted exactly once
/// (the remote login shell runs it as written; `sdo` wraps it in
/// `sudo -n -- /bin/sh -c '…'`, which never prompts).
public struct ShellCommandTask: DescribedTask {
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

    public static let doDescriptor = TaskDescriptor(
        name: "do", usage: "do:COMMAND", summary: "Run a shell command as the SSH user.",
        details: """
            Runs COMMAND exactly as written with the remote login shell. Quote it once for your
            local shell: `do:'uptime'`. A comma needs no escaping (`\\,` also works, as in Fabric).
            `--dry-run` prints the exact remote command.
            """, changesHosts: true) // an arbitrary command may change anything

    public static let sdoDescriptor = TaskDescriptor(
        name: "sdo", usage: "sdo:COMMAND", summary: "Run a shell command through sudo, never prompting.",
        details: """
            Runs COMMAND as root through `sudo -n -- /bin/sh -c 'COMMAND'` (quoted exactly once;
            as root, sudo is skipped). `-n` means sudo never asks for a password: a host where
            it would fails alone with a message saying so, instead of hanging the run.
            """, changesHosts: true)

    public var descriptor: TaskDescriptor { sudo ? Self.sdoDescriptor : Self.doDescriptor }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        [remoteCommand(command, sudo: sudo, on: host, in: context)]
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute(command, sudo: sudo)
        return outcome(of: result, on: host)
    }
}

extension ShellCommandTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { [doDescriptor, sdoDescriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> ShellCommandTask {
        let sudo = invocation.name == sdoDescriptor.name
        let usage = (sudo ? sdoDescriptor : doDescriptor).usage
        return ShellCommandTask(invocation: invocation, command: try oneArgument(invocation, usage: usage), sudo: sudo)
    }
}

/// `app.start|stop|restart|reload|status:NAME` through the host's service
/// manager. NAME is resolved through the inventory's aliases, and on each host
/// the first candidate defined there is used (so `app.start:goreplay` reaches
/// the legacy upstart job `gor`, which Fabric's `service goreplay start` did not).
public struct ServiceTask: DescribedTask {
    public let invocation: TaskInvocation
    public let action: ServiceAction
    /// Names to try on each host, in order.
    public let candidates: [ServiceName]

    public init(invocation: TaskInvocation, action: ServiceAction, candidates: [ServiceName]) {
        self.invocation = invocation
        self.action = action
        self.candidates = candidates
    }

    public static func descriptor(for action: ServiceAction) -> TaskDescriptor {
        let name = "app.\(action.rawValue)"
        let summary =
            switch action {
            case .start: "Start a service (starting a running one succeeds)."
            case .stop: "Stop a service (stopping a stopped one succeeds)."
            case .restart: "Restart a service."
            case .reload: "Reload a service's configuration."
            case .status: "Show whether a service is running (read-only)."
            }
        return TaskDescriptor(
            name: name, usage: "\(name):NAME", summary: summary,
            details: """
                Runs `\(action.rawValue)` through each host's service manager (systemd, upstart,
                SysV `service`, or govuk-fab's supervisor mode). NAME must be letters, digits and
                `_ . @ -`; it is resolved through the inventory's `services.aliases`, and on each
                host the first candidate defined there is used (`app.start:goreplay` starts the
                legacy upstart job `gor` where that is what exists). A host with none fails alone
                with exit status 5.\(action == .status ? " A stopped service is reported, not a failure." : "")
                """, changesHosts: action.changesHosts)
    }

    public var descriptor: TaskDescriptor { Self.descriptor(for: action) }

    func script(for host: FleetHost, in inventory: Inventory) -> String {
        ServiceControl(manager: inventory.serviceManager(for: host)).resolvedCommand(action, candidates: candidates)
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        [remoteCommand(script(for: host, in: context.inventory), sudo: true, on: host, in: context)]
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
        return outcome(
            of: result, on: host, message: action == .status && result.succeeded ? "running" : nil,
            changed: action.changesHosts)
    }
}

extension ServiceTask: BuiltInTask {
    static var descriptors: [TaskDescriptor] { ServiceAction.allCases.map(descriptor(for:)) }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> ServiceTask {
        guard let action = ServiceAction.allCases.first(where: { descriptor(for: $0).name == invocation.name }) else {
            throw TaskError(word: invocation.raw, problem: .unknownTask(name: invocation.name, suggestions: []))
        }
        let logical = try oneArgument(invocation, usage: descriptor(for: action).usage)
        do throws(ServiceNameError) {
            _ = try ServiceName(validating: logical)
            return ServiceTask(
                invocation: invocation, action: action,
                candidates: try serviceCandidates(logical, in: inventory))
        } catch {
            throw TaskError(word: invocation.raw, problem: .invalidServiceName(error))
        }
    }
}
