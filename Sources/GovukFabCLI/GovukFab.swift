import ArgumentParser
import Fleet
import FleetTasks
import Foundation
import Logging
import SSHTransport

/// `govuk-fab [OPTIONS] ENVIRONMENT [SELECTOR…] TASK[:ARGS]…` — Fabric 1's
/// command line for GOV.UK's fleet.
public struct GovukFab: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "govuk-fab",
        abstract: "Run tasks on GOV.UK hosts over SSH, Fabric 1 style.",
        usage: """
            govuk-fab [OPTIONS] ENVIRONMENT [SELECTOR…] TASK[:ARGS]…
              govuk-fab production puppet_class:gor recover-goreplay
              govuk-fab production puppet_class:gor sdo:'rm /etc/govuk/env.d/FACTER_data_sync_in_progress' app.start:goreplay
              govuk-fab staging class:cache do:uptime
              govuk-fab --list
            """,
        discussion: """
            Selectors: puppet_class:NAME[,NAME], class:NAME, node_type:NAME, application:APP, all, -H HOSTS.
            Tasks take Fabric 1 arguments: task:a,b,key=value; \\, escapes a comma. Tasks run left to right,
            each over all its hosts before the next starts. Exit codes: 0 ok, 1 some host failed, 2 usage or
            inventory error, 3 refused, 4 no hosts matched, 130 interrupted (check-goreplay: 0-3 as a plugin).
            Shell completion: govuk-fab --generate-completion-script bash|zsh|fish.
            """)

    @Argument(help: "ENVIRONMENT, then selectors and tasks.")
    var words: [String] = []

    @Option(name: [.customShort("H"), .customLong("hosts")], help: "Hosts by name or address, comma separated (repeatable).")
    var hosts: [String] = []

    @Option(name: [.customShort("x"), .customLong("exclude-hosts")], help: "Hosts to leave out, comma separated (repeatable).")
    var excludeHosts: [String] = []

    @Option(name: [.customShort("P"), .customLong("parallel")], help: "Hosts worked on at once (default: the inventory's parallelism).")
    var parallel: Int?

    @Flag(help: "One host at a time (same as -P 1).")
    var serial = false

    @Flag(name: .customLong("dry-run"), help: "Print the hosts and the exact remote commands; connect to nothing (recover-goreplay reads state only).")
    var dryRun = false

    @Flag(help: "Answer yes to confirmation (for scripts).")
    var yes = false

    @Flag(help: "JSON Lines events on stdout instead of text.")
    var json = false

    @Option(help: "Inventory file to use instead of inventories/ENVIRONMENT.yml.")
    var inventory: String?

    @Flag(name: .customLong("warn-only"), help: "Keep failed hosts in for later tasks.")
    var warnOnly = false

    @Flag(name: .customLong("abort-on-failure"), help: "Start no new host or task after the first failure.")
    var abortOnFailure = false

    @Option(name: .customLong("connect-timeout"), help: "Connect timeout, e.g. 10s (default: the inventory's).")
    var connectTimeout: String?

    @Flag(help: "Ask a live inventory source again instead of using its cached answer.")
    var refresh = false

    @Option(name: .customShort("F"), help: "ssh_config file to read instead of ~/.ssh/config ('none': no file).")
    var sshConfigFile: String?

    @Option(name: .customLong("command-timeout"), help: "Per-command timeout, e.g. 5m; the remote command is killed.")
    var commandTimeout: String?

    @Flag(help: "Run even inside the data-sync window.")
    var force = false

    @Flag(help: "List every task with its one-line description.")
    var list = false

    @Flag(name: .customLong("no-color"), help: "Never use colour.")
    var noColor = false

    public init() {}

    public mutating func validate() throws {
        if warnOnly && abortOnFailure {
            throw ValidationError("--warn-only and --abort-on-failure contradict each other; pick one")
        }
        if let parallel, parallel < 1 {
            throw ValidationError("--parallel takes a number of hosts, 1 or more (got \(parallel))")
        }
        if let connectTimeout, DurationText.parse(connectTimeout) == nil {
            throw ValidationError("--connect-timeout: '\(connectTimeout)' is not a duration; use e.g. 10s")
        }
        if let commandTimeout, DurationText.parse(commandTimeout) == nil {
            throw ValidationError("--command-timeout: '\(commandTimeout)' is not a duration; use e.g. 5m")
        }
        if !list && words.isEmpty {
            throw ValidationError("missing ENVIRONMENT and tasks, e.g. govuk-fab production puppet_class:gor check-goreplay (see --list)")
        }
    }

    public mutating func run() async throws {
        let invocation = Invocation(
            words: words, hosts: hosts, excludeHosts: excludeHosts, parallel: serial ? 1 : parallel, dryRun: dryRun,
            yes: yes, json: json, inventoryPath: inventory, warnOnly: warnOnly, abortOnFailure: abortOnFailure,
            connectTimeout: connectTimeout.flatMap(DurationText.parse),
            commandTimeout: commandTimeout.flatMap(DurationText.parse), sshConfigFile: sshConfigFile,
            refresh: refresh, force: force, list: list,
            colour: noColor ? .never : .auto, argv: CommandLine.arguments)
        let status = await FabSession(invocation: invocation, environment: ProcessInfo.processInfo.environment).run()
        if status != 0 { throw ExitCode(status) }
    }

    /// Like ArgumentParser's `main`, but usage errors exit 2 as documented
    /// (ArgumentParser's default is 64).
    public static func mainWithDocumentedExitCodes(_ arguments: [String]? = nil) async -> Never {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(FleetExitCode.usage.rawValue)
        }
    }
}

/// The parsed command line as plain values.
struct Invocation: Sendable {
    enum Colour: Sendable { case auto, never }
    var words: [String]
    var hosts: [String]
    var excludeHosts: [String]
    var parallel: Int?
    var dryRun: Bool
    var yes: Bool
    var json: Bool
    var inventoryPath: String?
    var warnOnly: Bool
    var abortOnFailure: Bool
    var connectTimeout: Duration?
    var commandTimeout: Duration?
    /// `-F FILE`; nil: `~/.ssh/config` if present.
    var sshConfigFile: String?
    /// `--refresh`: bypass the live inventory cache.
    var refresh: Bool
    var force: Bool
    var list: Bool
    var colour: Colour
    var argv: [String]
}
