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
            WordCompletion(environment: ProcessInfo.processInfo.environment)
                .candidates(words: words, index: index, prefix: prefix)
        })
    var words: [String] = []

    /// The words before `--` and the command after it (see ``FabricOptions/remainderMarker``).
    var splitWords: (words: [String], remainder: [String]?) {
        guard let marker = words.firstIndex(of: FabricOptions.remainderMarker) else { return (words, nil) }
        return (Array(words[..<marker]), Array(words[(marker + 1)...]))
    }

    // MARK: Hosts

    @Option(name: [.customShort("H"), .customLong("hosts")],
            help: ArgumentHelp("Hosts by name or address, comma separated (repeatable).", valueName: "hosts"))
    var hosts: [String] = []

    @Option(name: [.customShort("R"), .customLong("roles")],
            help: ArgumentHelp("Node classes to run on, comma separated (as class:NAME).", valueName: "classes"))
    var roles: [String] = []

    @Option(name: [.customShort("x"), .customLong("exclude-hosts")],
            help: ArgumentHelp("Hosts to leave out, comma separated (repeatable).", valueName: "hosts"))
    var excludeHosts: [String] = []

    // MARK: Execution

    @Flag(name: [.customShort("P"), .customLong("parallel")], help: "Run hosts in parallel (the default; -P N still sets the pool size).")
    var parallel = false

    @Option(name: [.customShort("z"), .customLong("pool-size")],
            help: ArgumentHelp("Hosts worked on at once (default: the inventory's parallelism).", valueName: "n"))
    var poolSize: Int?

    @Flag(help: "One host at a time (Fabric's default; same as -z 1).")
    var serial = false

    @Flag(name: .customLong("dry-run"), help: "Print the hosts and the exact remote commands; connect to nothing (recover-goreplay reads state only).")
    var dryRun = false

    @Flag(help: "Answer yes to confirmation (for scripts).")
    var yes = false

    @Flag(help: "JSON Lines events on stdout instead of text.")
    var json = false

    @Option(help: ArgumentHelp("Inventory file to use instead of inventories/ENVIRONMENT.yml.", valueName: "file"),
            completion: .file(extensions: ["yml", "yaml"]))
    var inventory: String?

    @Option(name: .customLong("config-dir"),
            help: ArgumentHelp("Read DIR/inventories and DIR/playbooks instead of the checkout's or installed ones"
                + " (--config-dir . for the current directory, which is never read unasked).", valueName: "dir"),
            completion: .directory)
    var configDirectory: String?

    @Flag(name: [.customShort("w"), .customLong("warn-only")], help: "Keep failed hosts in for later tasks.")
    var warnOnly = false

    @Flag(name: .customLong("abort-on-failure"), help: "Start no new host or task after the first failure (Fabric's default).")
    var abortOnFailure = false

    @Flag(name: .customLong("skip-bad-hosts"), help: "With --abort-on-failure, a host that cannot be reached does not abort the run.")
    var skipBadHosts = false

    @Option(name: [.customShort("t"), .customLong("timeout"), .customLong("connect-timeout")],
            help: ArgumentHelp("Connect timeout: seconds (10) or a duration (10s) (default: the inventory's).",
                               valueName: "duration"),
            completion: TimeoutArgument.defaultCompletionKind, transform: TimeoutArgument.parse)
    var connectTimeout: TimeoutArgument?

    @Option(name: [.customShort("T"), .customLong("command-timeout")],
            help: ArgumentHelp("Per-command timeout: seconds (60) or a duration (5m); the remote command is killed.",
                               valueName: "duration"),
            completion: TimeoutArgument.defaultCompletionKind, transform: TimeoutArgument.parse)
    var commandTimeout: TimeoutArgument?

    @Option(name: [.customShort("n"), .customLong("connection-attempts")],
            help: ArgumentHelp("Attempts to connect to each host before giving up (default 1).", valueName: "n"))
    var connectionAttempts: Int?

    @Option(help: ArgumentHelp("Send an SSH keepalive every N seconds (0: never; default 15).", valueName: "seconds"))
    var keepalive: Int?

    @Flag(help: "Run even inside the data-sync window.")
    var force = false

    @Option(name: .customLong("set"),
            help: ArgumentHelp("KEY=VALUE,... settings for playbooks (repeatable; KEY alone is True).", valueName: "settings"))
    var settings: [String] = []

    // MARK: Connection

    @Option(name: [.customShort("u"), .customLong("user")],
            help: ArgumentHelp("Login user (default: the inventory's, else ssh_config's, else yours).", valueName: "user"))
    var user: String?

    @Option(name: .customShort("i"),
            help: ArgumentHelp("Private key file, tried before the inventory's (repeatable).", valueName: "path"),
            completion: .file())
    var identityFiles: [String] = []

    @Flag(name: [.customShort("a"), .customLong("no_agent"), .customLong("no-agent")], help: "Do not use ssh-agent.")
    var noAgent = false

    @Flag(name: [.customShort("k"), .customLong("no-keys")], help: "Use no key files except those given with -i.")
    var noKeys = false

    @Option(help: ArgumentHelp("SSH port (default: the inventory's, else ssh_config's, else 22).", valueName: "port"))
    var port: Int?

    @Option(name: [.customShort("g"), .customLong("gateway")],
            help: ArgumentHelp("Jump host [user@]host[:port], replacing the inventory's gateway.", valueName: "host"))
    var gateway: String?

    @Option(name: .customLong("ssh-config-path"),
            help: ArgumentHelp("ssh_config file to read instead of ~/.ssh/config ('none': no file).", valueName: "file"),
            completion: .file())
    var sshConfigPath: String?

    @Flag(name: .customLong("system-known-hosts"), help: "Also trust keys in /etc/ssh/ssh_known_hosts.")
    var systemKnownHosts = false

    @Flag(name: [.customShort("r"), .customLong("reject-unknown-hosts")], help: "Accepted: unknown host keys are always rejected.")
    var rejectUnknownHosts = false

    @Flag(help: "Ask a live inventory source again instead of using its cached answer.")
    var refresh = false

    // MARK: Output

    @Option(help: ArgumentHelp(
        "Output levels to hide, comma separated (status, running, stdout, stderr, warnings, debug, output, commands, everything).",
        valueName: "levels"))
    var hide: [String] = []

    @Option(help: ArgumentHelp("Output levels to show, comma separated (as --hide).", valueName: "levels"))
    var show: [String] = []

    @Flag(name: .customLong("abort-on-prompts"), help: "Accepted: govuk-fab never prompts on a host (sudo -n, no password auth).")
    var abortOnPrompts = false

    @Flag(help: "Accepted: output is always printed a whole line at a time.")
    var linewise = false

    @Flag(name: .customLong("no-pty"), help: "Accepted: govuk-fab never asks for a pty.")
    var noPTY = false

    @Flag(name: [.customShort("e"), .customLong("eagerly-disconnect")], help: "Accepted: each host's session closes after its last task.")
    var eagerlyDisconnect = false

    @Flag(name: .customLong("colorize-errors"), help: "Accepted: errors are one line on stderr.")
    var colorizeErrors = false

    @Flag(name: .customLong("no-color"), help: "Never use colour.")
    var noColor = false

    // MARK: Information

    @Flag(name: [.customShort("l"), .customLong("list")], help: "List every task with its one-line description (no ENVIRONMENT needed).")
    var list = false

    @Flag(help: "List task names only, one per line.")
    var shortlist = false

    @Option(name: [.customShort("F"), .customLong("list-format")],
            help: ArgumentHelp("--list format: short, normal or nested (ssh_config is --ssh-config-path).", valueName: "format"),
            completion: .list(["short", "normal", "nested"]))
    var listFormat: String?

    @Option(name: [.customShort("d"), .customLong("display")],
            help: ArgumentHelp("Show the help of task NAME (as help:NAME).", valueName: "task"))
    var display: String?

    /// `--version` is ArgumentParser's (from `configuration.version`); `-V` is Fabric's spelling.
    @Flag(name: .customShort("V"), help: "Print the version and exit (as --version).")
    var version = false

    @Flag(name: [.customShort("v"), .customLong("verbose")],
          help: "Log what govuk-fab does (connections, caches) on stderr (GOVUK_FAB_LOG_LEVEL overrides).")
    var verbose = false

    public init() {}

    /// Every value checked and converted, so ``run()`` cannot meet a malformed one.
    struct Checked {
        var connectTimeout: Duration?
        var commandTimeout: Duration?
        var settings: [String: String]
        var outputLevels: OutputLevels
        var gateway: GatewayHop?
        var listFormat: ListFormat
    }

    func checked() throws -> Checked {
        if warnOnly && abortOnFailure {
            throw ValidationError("--warn-only and --abort-on-failure contradict each other; pick one")
        }
        if skipBadHosts && warnOnly {
            throw ValidationError("--skip-bad-hosts and --warn-only together: --warn-only already keeps every host in; drop one")
        }
        if serial && (parallel || poolSize.map { $0 > 1 } == true) {
            throw ValidationError("--serial and -P/-z contradict each other; pick one")
        }
        if let poolSize, poolSize < 1 {
            throw ValidationError("-z/--pool-size takes a number of hosts, 1 or more (got \(poolSize))")
        }
        var checked = Checked(settings: [:], outputLevels: OutputLevels(), listFormat: .normal)
        checked.connectTimeout = connectTimeout?.duration
        checked.commandTimeout = commandTimeout?.duration
        if let connectionAttempts, !(1...100).contains(connectionAttempts) {
            throw ValidationError("-n/--connection-attempts takes 1 to 100 (got \(connectionAttempts))")
        }
        if let keepalive, !(0...86_400).contains(keepalive) {
            throw ValidationError("--keepalive takes seconds from 0 (off) to 86400 (got \(keepalive))")
        }
        if let port, !(1...65535).contains(port) {
            throw ValidationError("--port takes 1 to 65535 (got \(port))")
        }
        if let user, user.isEmpty || user.contains(where: { $0.isWhitespace || $0 == "@" }) {
            throw ValidationError("-u/--user: '\(user)' is not a login name")
        }
        if let gateway {
            switch GatewayHop.parse(gateway) {
            case .success(let hop): checked.gateway = hop
            case .failure(let error): throw ValidationError("-g/--gateway: '\(gateway)' is not [user@]host[:port]: \(error.reason)")
            }
        }
        if let listFormat {
            guard let format = ListFormat(rawValue: listFormat) else {
                throw ValidationError("-F/--list-format: '\(listFormat)' is not short, normal or nested"
                    + " (-F is Fabric's --list-format; for an ssh_config file use --ssh-config-path PATH)")
            }
            checked.listFormat = format
        }
        if shortlist { checked.listFormat = .short }
        if listFormat != nil && !list && !shortlist && !words.isEmpty {
            throw ValidationError("-F/--list-format only changes --list; add -l (for an ssh_config file use --ssh-config-path PATH)")
        }
        if let configDirectory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: configDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--config-dir \(configDirectory): no directory there; give one holding inventories/ or playbooks/")
            }
        }
        checked.settings = try FabricOptions.settings(settings)
        checked.outputLevels = try OutputLevels.parse(show: show, hide: hide)
        let informational = list || shortlist || display != nil || version
        if !informational && splitWords.words.isEmpty {
            throw ValidationError("missing ENVIRONMENT and tasks, e.g. govuk-fab production puppet_class:gor check-goreplay (see --list)")
        }
        return checked
    }

    public mutating func validate() throws {
        _ = try checked()
    }

    public mutating func run() async throws {
        if version {
            print("govuk-fab \(GovukFab.version)")
            return
        }
        let checked = try checked()
        let splitNames = { (values: [String]) in
            values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        }
        let (words, remainder) = splitWords
        let invocation = Invocation(
            words: words, remainderCommand: remainder?.joined(separator: " "),
            hosts: splitNames(hosts), roles: splitNames(roles), excludeHosts: splitNames(excludeHosts),
            parallel: serial ? 1 : poolSize, dryRun: dryRun,
            yes: yes, json: json, inventoryPath: inventory, configDirectory: configDirectory, warnOnly: warnOnly, abortOnFailure: abortOnFailure,
            skipBadHosts: skipBadHosts, connectTimeout: checked.connectTimeout, commandTimeout: checked.commandTimeout,
            connectionAttempts: connectionAttempts ?? 1, keepalive: keepalive, user: user, identityFiles: identityFiles,
            useAgent: !noAgent, noKeys: noKeys, port: port, gateway: checked.gateway, systemKnownHosts: systemKnownHosts,
            sshConfigFile: sshConfigPath, refresh: refresh, force: force, settings: checked.settings,
            outputLevels: checked.outputLevels, list: list || shortlist || listFormat != nil && words.isEmpty,
            listFormat: checked.listFormat, display: display,
            colour: noColor ? .never : .auto, verbose: verbose, argv: CommandLine.arguments)
        let status = await FabSession(invocation: invocation, environment: ProcessInfo.processInfo.environment).run()
        if status != 0 { throw ExitCode(status) }
    }

    /// Printed by `-V`/`--version`.
    public static let version = "0.12.0"

    /// Like ArgumentParser's `main`, but usage errors exit 2 as documented
    /// (ArgumentParser's default is 64).
    public static func mainWithDocumentedExitCodes(_ arguments: [String]? = nil) async -> Never {
        signal(SIGPIPE, SIG_IGN)
        let given = arguments ?? Array(CommandLine.arguments.dropFirst())
        let normalised: [String]
        do {
            // A completion request from a generated shell script is ArgumentParser's to read as it is.
            normalised = given.first == "---completion" ? given : try FabricOptions.normalise(given)
        } catch {
            FileHandle.standardError.write(Data("govuk-fab: error: \(error)\n".utf8))
            Foundation.exit(FleetExitCode.usage.rawValue)
        }
        do {
            var command = try parseAsRoot(normalised)
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
            // One line, as every other error: the usage block would bury it.
            let message = GovukFab.message(for: error).replacingOccurrences(of: "\n", with: "; ")
            let hint = message.contains("(see ") ? "" : " (see govuk-fab --help)"
            FileHandle.standardError.write(Data("govuk-fab: error: \(message)\(hint)\n".utf8))
            Foundation.exit(FleetExitCode.usage.rawValue)
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
