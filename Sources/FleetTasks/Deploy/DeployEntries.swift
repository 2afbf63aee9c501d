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
            throw TaskError(word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: [extra]))
        }
        var explicit: String?
        for keyword in invocation.keywords {
            guard keyword.name == "binary" else {
                throw TaskError(word: invocation.raw, problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
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

/// Where deploy-goreplay's binary comes from, located and hashed once per
/// run (in preflight, before any host is touched).
public final class ReplayBinarySource: Sendable {
    let explicit: String?
    private let located = Mutex<ReplayBinary?>(nil)

    public init(explicit: String?) { self.explicit = explicit }

    public func resolve() throws(DeployError) -> ReplayBinary {
        if let binary = located.withLock({ $0 }) { return binary }
        let binary = try ReplayBinary.locate(
            explicit: explicit, environment: ProcessInfo.processInfo.environment, checkoutRoot: CheckoutLocator.root())
        located.withLock { $0 = binary }
        return binary
    }
}

/// The repository checkout the running binary was built in, if any: the
/// nearest parent of the executable holding `Package.swift` and `inventories/`.
public enum CheckoutLocator {
    public static func root(executable: String = CommandLine.arguments.first ?? "") -> String? {
        var url = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        guard url.path.hasPrefix("/") else { return nil }
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let path = url.path
            if FileManager.default.fileExists(atPath: path + "/Package.swift"),
               FileManager.default.fileExists(atPath: path + "/inventories") {
                return path
            }
            if path == "/" { break }
        }
        return nil
    }
}
