import Fleet
import Foundation
import Synchronization

extension DeployGoReplay: BuiltInTask {
    public static let descriptor = TaskDescriptor(
        name: "deploy-goreplay", usage: "deploy-goreplay[:binary=PATH]",
        summary: "Install goreplay and its service on each host; restart only what changed.",
        details: """
            Takes the release build of this repository's `goreplay` (building it if missing), or
            `binary=PATH`, or `$GOVUK_FAB_GOREPLAY_BINARY`. On every host in parallel: uploads it
            over SFTP under a staging name; then, as root, copies it into a new root-owned file
            next to `replay.binary_path`, checks that copy's SHA-256, and only then runs it
            (`--help`, to check it works there) and moves it into place with one rename. So a
            staging file changed after the upload is never run, and a failed or interrupted
            upload, a wrong hash or a binary the host cannot run leaves the old binary running,
            as the message says. Hosts without a Swift runtime need `make goreplay-static`'s binary
            (`binary=.build-static/release/goreplay`). Writes the service definition from the inventory's `replay.args` for
            the host or its class (a systemd unit, an upstart job, or a supervisor run script) if it
            differs, and (re)starts the service only where the binary or the definition changed.
            A second run changes nothing and says so. Refuses inside the data-sync window unless
            `--force`, and never starts GoReplay on a host whose marker says `true`.
            `--dry-run` reads each host's state and prints what would change.
            """, changesHosts: true)

    public var descriptor: TaskDescriptor { Self.descriptor }
    static var descriptors: [TaskDescriptor] { [descriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> DeployGoReplay {
        let usage = descriptor.usage
        if let extra = invocation.positional.first {
            throw TaskError(
                word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: [extra]))
        }
        var explicit: String?
        for keyword in invocation.keywords {
            guard keyword.name == "binary" else {
                throw TaskError(
                    word: invocation.raw,
                    problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
            }
            explicit = keyword.value
        }
        return DeployGoReplay(invocation: invocation, binary: ReplayBinarySource(explicit: explicit))
    }
}

extension ShowReplayConfig: BuiltInTask {
    public static let descriptor = TaskDescriptor(
        name: "goreplay.config", usage: "goreplay.config",
        summary: "Show the goreplay service definition deploy-goreplay would write (read-only).",
        details: """
            Renders, for each selected host, the service definition `deploy-goreplay` writes from the
            inventory's `replay` settings: path, service manager and content. Connects to nothing.
            """, changesHosts: false)

    public var descriptor: TaskDescriptor { Self.descriptor }
    static var descriptors: [TaskDescriptor] { [descriptor] }

    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> ShowReplayConfig {
        try noArguments(invocation, usage: descriptor.usage)
        return ShowReplayConfig(invocation: invocation)
    }
}

/// Where deploy-goreplay's binary comes from: `binary=PATH` as the task word gave it, and the
/// binary the CLI located (or built) for it before preflight (``provide(_:)``). The task itself
/// never builds anything or writes to the terminal.
public final class ReplayBinarySource: Sendable {
    /// `binary=PATH`, if given.
    public let explicit: String?
    private let located = Mutex<ReplayBinary?>(nil)

    public init(explicit: String?) { self.explicit = explicit }

    /// A source already holding its binary.
    public convenience init(_ binary: ReplayBinary) {
        self.init(explicit: binary.path)
        provide(binary)
    }

    /// Hands the task the binary the caller located.
    public func provide(_ binary: ReplayBinary) { located.withLock { $0 = binary } }

    /// Whether a binary has been provided (or loaded from `binary=PATH`).
    public var isResolved: Bool { located.withLock { $0 != nil } }

    /// The provided binary; else `binary=PATH` read and hashed (a file read, never a build).
    public func resolve() throws(DeployError) -> ReplayBinary {
        if let binary = located.withLock({ $0 }) { return binary }
        guard let explicit else {
            throw DeployError(
                host: "local", reason: "no goreplay binary was located for deploy-goreplay",
                remedy: "pass deploy-goreplay:binary=PATH")
        }
        let binary = try ReplayBinary.load(path: explicit)
        provide(binary)
        return binary
    }

    /// The sources of every deploy among `planned` (a playbook's calls included), for the caller to
    /// locate their binaries before preflight.
    public static func sources(in planned: [PlannedTask]) -> [(task: String, source: ReplayBinarySource)] {
        planned.compactMap { item in
            var task: any FleetTask = item.task
            if let gated = task as? GatedTask { task = gated.inner }
            guard let deploy = task as? DeployGoReplay else { return nil }
            return (deploy.invocation.name, deploy.binary)
        }
    }
}
