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
              govuk-fab -H cache-1,cache-2 production sdo:'service nginx restart',hosts=cache-2
              govuk-fab -H cache-1 production -- uname -a
              govuk-fab --list
            """,
        discussion: """
            Selectors: puppet_class:NAME[,NAME], class:NAME, node_type:NAME, application:APP, all, -H HOSTS, -R CLASSES.

            Tasks take Fabric 1 arguments: task:a,b,key=value (\\, and \\= escape). host=NAME, hosts=A;B, role=CLASS, roles=A;B and exclude_hosts=A;B choose that task's own hosts. Tasks run left to right, each over all its hosts before the next starts; hosts run in parallel unless --serial, and a failed host does not stop the others unless --abort-on-failure.

            Fabric options that would weaken security or have no meaning here (-A, -D, -p, -I, -f, -c, -s, --gss-*, --skip-unknown-tasks) are refused with the reason; docs/fabric-compat.md compares every fab option.

            Exit codes: 0 ok, 1 some host failed, 2 usage or inventory error, 3 refused, 4 no hosts matched, 130 interrupted (check-goreplay: 0-3 as a plugin). Shell completion: govuk-fab --generate-completion-script bash|zsh|fish.
            """,
        version: "govuk-fab " + GovukFab.version)

    @Argument(
        help: ArgumentHelp(
            "ENVIRONMENT, then selectors and tasks; '-- COMMAND' runs COMMAND on the selected hosts after them (as do:).",
            valueName: "words"),
        completion: .custom { words, index, prefix in
            WordCompletion(environment: LocalEnvironment.current().variables)
                .candidates(words: words, index: index, prefix: prefix)
        })
    var words: [String] = []

    /// The words before `--` and the command after it (see ``FabricOptions/remainderMarker``).
    var splitWords: (words: [String], remainder: [String]?) {
        guard let marker = words.firstIndex(of: FabricOptions.remainderMarker) else { return (words, nil) }
        return (Array(words[..<marker]), Array(words[(marker + 1)...]))
    }

    @OptionGroup(title: "Hosts") var selection: SelectionOptions

    @OptionGroup(title: "Inventory") var source: InventoryOptions

    @OptionGroup(title: "Running") var running: RunOptions

    @OptionGroup(title: "Connection") var connection: ConnectionOptions

    @OptionGroup(title: "Output") var output: OutputOptions

    @OptionGroup(title: "Information") var information: InformationOptions

    public init() {}

    /// Checks across groups; each group checks its own values in its `validate()`.
    public mutating func validate() throws {
        if information.listFormat != nil && !information.list && !information.shortlist && !words.isEmpty {
            throw ValidationError(
                "-F/--list-format only changes --list; add -l (for an ssh_config file use --ssh-config-path PATH)")
        }
        if !information.isInformational && splitWords.words.isEmpty {
            throw ValidationError(
                "missing ENVIRONMENT and tasks, e.g. govuk-fab production puppet_class:gor check-goreplay (see --list)")
        }
    }

    public mutating func run() async throws {
        let status = try await run(local: .current(), io: .standard)
        if status != 0 { throw ExitCode(status) }
    }

    /// The parsed command line as plain values.
    func invocation(argv: [String]) throws -> Invocation {
        let splitNames = { (values: [String]) in
            values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter {
                !$0.isEmpty
            }
        }
        let (words, remainder) = splitWords
        let (run, connection, output, information) = (running, self.connection, self.output, self.information)
        return Invocation(
            words: words, remainderCommand: remainder?.joined(separator: " "),
            hosts: splitNames(selection.hosts), roles: splitNames(selection.roles),
            excludeHosts: splitNames(selection.excludeHosts),
            parallel: run.serial ? 1 : run.poolSize, dryRun: run.dryRun,
            yes: run.yes, json: output.json, inventoryPath: source.inventory, configDirectory: source.configDirectory,
            warnOnly: run.warnOnly, abortOnFailure: run.abortOnFailure,
            skipBadHosts: run.skipBadHosts, connectTimeout: run.connectTimeout?.duration,
            commandTimeout: run.commandTimeout?.duration,
            connectionAttempts: run.connectionAttempts ?? 1, keepalive: run.keepalive, user: connection.user,
            identityFiles: connection.identityFiles, useAgent: !connection.noAgent, noKeys: connection.noKeys,
            port: connection.port, gateway: try connection.gatewayHop(), systemKnownHosts: connection.systemKnownHosts,
            sshConfigFile: connection.sshConfigPath, refresh: source.refresh, force: run.force,
            settings: try run.playbookSettings(), outputLevels: try output.levels(),
            list: information.list || information.shortlist || information.listFormat != nil && words.isEmpty,
            listFormat: try information.format(), display: information.display,
            colour: output.noColor ? .never : .auto, verbose: output.verbose, argv: argv)
    }

    /// The session for this command line, with the local environment and console given.
    func run(
        local: LocalEnvironment, io: ConsoleIO, interrupts: InterruptSource? = nil,
        search: ConfigurationSearch? = nil, argv: [String] = CommandLine.arguments
    ) async throws -> Int32 {
        if information.version {
            io.output("govuk-fab \(GovukFab.version)\n")
            return 0
        }
        let invocation = try self.invocation(argv: argv)
        return await FabSession(invocation: invocation, local: local, io: io, interrupts: interrupts, search: search)
            .run()
    }

    /// Printed by `-V`/`--version`.
    public static let version = "0.12.0"

    /// Like ArgumentParser's `main`, but usage errors exit 2 as documented
    /// (ArgumentParser's default is 64).
    public static func mainWithDocumentedExitCodes(_ arguments: [String]? = nil) async -> Never {
        signal(SIGPIPE, SIG_IGN)
        let given = arguments ?? Array(CommandLine.arguments.dropFirst())
        Foundation.exit(await main(given, local: .current(), io: .standard))
    }

    /// The whole command, from arguments to exit status, with the process's facts and
    /// terminal given: the binary passes its own, tests pass buffers and a pinned environment.
    static func main(
        _ arguments: [String], local: LocalEnvironment, io: ConsoleIO, interrupts: InterruptSource? = nil,
        search: ConfigurationSearch? = nil
    ) async -> Int32 {
        let normalised: [String]
        do {
            // A completion request from a generated shell script is ArgumentParser's to read as it is.
            normalised = arguments.first == "---completion" ? arguments : try FabricOptions.normalise(arguments)
        } catch {
            io.errorOutput("govuk-fab: error: \(error)\n")
            return FleetExitCode.usage.rawValue
        }
        do {
            let command = try parseAsRoot(normalised)
            guard let fab = command as? GovukFab else {
                // Only the root command exists; anything else is ArgumentParser's own (none today).
                var other = command
                try other.run()
                return 0
            }
            return try await fab.run(
                local: local, io: io, interrupts: interrupts, search: search,
                argv: [CommandLine.arguments.first ?? "govuk-fab"] + arguments)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                io.output(fullMessage(for: error) + "\n")
                return 0
            }
            // One line, as every other error: the usage block would bury it.
            let message = GovukFab.message(for: error).replacingOccurrences(of: "\n", with: "; ")
            let hint = message.contains("(see ") ? "" : " (see govuk-fab --help)"
            io.errorOutput("govuk-fab: error: \(message)\(hint)\n")
            return FleetExitCode.usage.rawValue
        }
    }
}

/// `--list` formats (Fabric's `-F`).
enum ListFormat: String, Sendable {
    case short, normal, nested
}

/// The parsed command line as plain values.
struct Invocation: Sendable {
    enum Colour: Sendable { case auto, never }
    var words: [String]
    /// `-- COMMAND`, joined with spaces as Fabric did.
    var remainderCommand: String?
    /// `-H` names, split on commas and trimmed.
    var hosts: [String]
    /// `-R` node classes.
    var roles: [String] = []
    var excludeHosts: [String]
    /// `-z N` (or `-P N`); 1 with `--serial`; nil: the inventory's.
    var parallel: Int?
    var dryRun: Bool
    var yes: Bool
    var json: Bool
    var inventoryPath: String?
    /// `--config-dir DIR`: DIR/inventories and DIR/playbooks.
    var configDirectory: String? = nil
    var warnOnly: Bool
    var abortOnFailure: Bool
    var skipBadHosts: Bool = false
    var connectTimeout: Duration?
    var commandTimeout: Duration?
    var connectionAttempts: Int = 1
    /// `--keepalive N` seconds; 0 turns keepalives off; nil: the default.
    var keepalive: Int?
    var user: String?
    var identityFiles: [String] = []
    var useAgent: Bool = true
    var noKeys: Bool = false
    var port: Int?
    var gateway: GatewayHop?
    var systemKnownHosts: Bool = false
    /// `--ssh-config-path FILE`; nil: `~/.ssh/config` if present.
    var sshConfigFile: String?
    /// `--refresh`: bypass the live inventory cache.
    var refresh: Bool
    var force: Bool
    /// `--set` values.
    var settings: [String: String] = [:]
    var outputLevels: OutputLevels = OutputLevels()
    var list: Bool
    var listFormat: ListFormat = .normal
    /// `-d NAME`.
    var display: String?
    var colour: Colour
    /// `-v/--verbose`: debug logging on stderr.
    var verbose: Bool = false
    var argv: [String]
}
