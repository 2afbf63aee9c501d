import ArgumentParser
import Fleet
import Foundation

// The options of `govuk-fab`, in the groups its help shows (ArgumentParser option groups).

/// Which hosts a run touches, besides the selectors among the words.
struct SelectionOptions: ParsableArguments {
    @Option(
        name: [.customShort("H"), .customLong("hosts")],
        help: ArgumentHelp("Hosts by name or address, comma separated (repeatable).", valueName: "hosts"))
    var hosts: [String] = []

    @Option(
        name: [.customShort("R"), .customLong("roles")],
        help: ArgumentHelp("Node classes to run on, comma separated (as class:NAME).", valueName: "classes"))
    var roles: [String] = []

    @Option(
        name: [.customShort("x"), .customLong("exclude-hosts")],
        help: ArgumentHelp("Hosts to leave out, comma separated (repeatable).", valueName: "hosts"))
    var excludeHosts: [String] = []
}

/// Where the inventory and playbooks come from (docs/inventory.md).
struct InventoryOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Inventory file to use instead of inventories/ENVIRONMENT.yml.", valueName: "file"),
        completion: .file(extensions: ["yml", "yaml"]))
    var inventory: String?

    @Option(
        name: .customLong("config-dir"),
        help: ArgumentHelp(
            "Read DIR/inventories and DIR/playbooks instead of the checkout's or installed ones"
                + " (--config-dir . for the current directory, which is never read unasked).", valueName: "dir"),
        completion: .directory)
    var configDirectory: String?

    @Flag(help: "Ask a live inventory source again instead of using its cached answer.")
    var refresh = false

    func validate() throws {
        if let configDirectory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: configDirectory, isDirectory: &isDirectory),
                isDirectory.boolValue
            else {
                throw ValidationError(
                    "--config-dir \(configDirectory): no directory there; give one holding inventories/ or playbooks/")
            }
        }
    }
}

/// How tasks run: parallelism, failures, timeouts, confirmation.
struct RunOptions: ParsableArguments {
    @Flag(
        name: [.customShort("P"), .customLong("parallel")],
        help: "Run hosts in parallel (the default; -P N still sets the pool size).")
    var parallel = false

    @Option(
        name: [.customShort("z"), .customLong("pool-size")],
        help: ArgumentHelp("Hosts worked on at once (default: the inventory's parallelism).", valueName: "n"))
    var poolSize: Int?

    @Flag(help: "One host at a time (Fabric's default; same as -z 1).")
    var serial = false

    @Flag(
        name: .customLong("dry-run"),
        help: "Print the hosts and the exact remote commands; connect to nothing (recover-goreplay reads state only).")
    var dryRun = false

    @Flag(help: "Answer yes to confirmation (for scripts).")
    var yes = false

    @Flag(name: [.customShort("w"), .customLong("warn-only")], help: "Keep failed hosts in for later tasks.")
    var warnOnly = false

    @Flag(
        name: .customLong("abort-on-failure"),
        help: "Start no new host or task after the first failure (Fabric's default).")
    var abortOnFailure = false

    @Flag(
        name: .customLong("skip-bad-hosts"),
        help: "With --abort-on-failure, a host that cannot be reached does not abort the run.")
    var skipBadHosts = false

    @Option(
        name: [.customShort("t"), .customLong("timeout"), .customLong("connect-timeout")],
        help: ArgumentHelp(
            "Connect timeout: seconds (10) or a duration (10s) (default: the inventory's).",
            valueName: "duration"),
        completion: TimeoutArgument.defaultCompletionKind, transform: TimeoutArgument.parse)
    var connectTimeout: TimeoutArgument?

    @Option(
        name: [.customShort("T"), .customLong("command-timeout")],
        help: ArgumentHelp(
            "Per-command timeout: seconds (60) or a duration (5m); the remote command is killed.",
            valueName: "duration"),
        completion: TimeoutArgument.defaultCompletionKind, transform: TimeoutArgument.parse)
    var commandTimeout: TimeoutArgument?

    @Option(
        name: [.customShort("n"), .customLong("connection-attempts")],
        help: ArgumentHelp("Attempts to connect to each host before giving up (default 1).", valueName: "n"))
    var connectionAttempts: Int?

    @Option(help: ArgumentHelp("Send an SSH keepalive every N seconds (0: never; default 15).", valueName: "seconds"))
    var keepalive: Int?

    @Flag(help: "Run even inside the data-sync window.")
    var force = false

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "KEY=VALUE,... settings for playbooks (repeatable; KEY alone is True).", valueName: "settings"))
    var settings: [String] = []

    func validate() throws {
        if warnOnly && abortOnFailure {
            throw ValidationError("--warn-only and --abort-on-failure contradict each other; pick one")
        }
        if skipBadHosts && warnOnly {
            throw ValidationError(
                "--skip-bad-hosts and --warn-only together: --warn-only already keeps every host in; drop one")
        }
        if serial && (parallel || poolSize.map { $0 > 1 } == true) {
            throw ValidationError("--serial and -P/-z contradict each other; pick one")
        }
        if let poolSize, poolSize < 1 {
            throw ValidationError("-z/--pool-size takes a number of hosts, 1 or more (got \(poolSize))")
        }
        if let connectionAttempts, !(1...100).contains(connectionAttempts) {
            throw ValidationError("-n/--connection-attempts takes 1 to 100 (got \(connectionAttempts))")
        }
        if let keepalive, !(0...86_400).contains(keepalive) {
            throw ValidationError("--keepalive takes seconds from 0 (off) to 86400 (got \(keepalive))")
        }
        _ = try playbookSettings()
    }

    /// `--set` values as a dictionary.
    func playbookSettings() throws -> [String: String] { try FabricOptions.settings(settings) }
}

/// How hosts are reached over SSH; beats the inventory and ssh_config.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: [.customShort("u"), .customLong("user")],
        help: ArgumentHelp("Login user (default: the inventory's, else ssh_config's, else yours).", valueName: "user"))
    var user: String?

    @Option(
        name: .customShort("i"),
        help: ArgumentHelp("Private key file, tried before the inventory's (repeatable).", valueName: "path"),
        completion: .file())
    var identityFiles: [String] = []

    @Flag(name: [.customShort("a"), .customLong("no_agent"), .customLong("no-agent")], help: "Do not use ssh-agent.")
    var noAgent = false

    @Flag(name: [.customShort("k"), .customLong("no-keys")], help: "Use no key files except those given with -i.")
    var noKeys = false

    @Option(help: ArgumentHelp("SSH port (default: the inventory's, else ssh_config's, else 22).", valueName: "port"))
    var port: Int?

    @Option(
        name: [.customShort("g"), .customLong("gateway")],
        help: ArgumentHelp("Jump host [user@]host[:port], replacing the inventory's gateway.", valueName: "host"))
    var gateway: String?

    @Option(
        name: .customLong("ssh-config-path"),
        help: ArgumentHelp("ssh_config file to read instead of ~/.ssh/config ('none': no file).", valueName: "file"),
        completion: .file())
    var sshConfigPath: String?

    @Flag(name: .customLong("system-known-hosts"), help: "Also trust keys in /etc/ssh/ssh_known_hosts.")
    var systemKnownHosts = false

    @Flag(
        name: [.customShort("r"), .customLong("reject-unknown-hosts")],
        help: "Accepted: unknown host keys are always rejected.")
    var rejectUnknownHosts = false

    func validate() throws {
        if let port, !(1...65535).contains(port) {
            throw ValidationError("--port takes 1 to 65535 (got \(port))")
        }
        if let user, user.isEmpty || user.contains(where: { $0.isWhitespace || $0 == "@" }) {
            throw ValidationError("-u/--user: '\(user)' is not a login name")
        }
        _ = try gatewayHop()
    }

    /// `-g` as a hop, if given.
    func gatewayHop() throws -> GatewayHop? {
        guard let gateway else { return nil }
        switch GatewayHop.parse(gateway) {
        case .success(let hop): return hop
        case .failure(let error):
            throw ValidationError("-g/--gateway: '\(gateway)' is not [user@]host[:port]: \(error.reason)")
        }
    }
}

/// What is printed, and how.
struct OutputOptions: ParsableArguments {
    @Flag(help: "JSON Lines events on stdout instead of text.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Output levels to hide, comma separated (status, running, stdout, stderr, warnings, debug, output, commands, everything).",
            valueName: "levels"))
    var hide: [String] = []

    @Option(help: ArgumentHelp("Output levels to show, comma separated (as --hide).", valueName: "levels"))
    var show: [String] = []

    @Flag(
        name: [.customShort("v"), .customLong("verbose")],
        help: "Log what govuk-fab does (connections, caches) on stderr (GOVUK_FAB_LOG_LEVEL overrides).")
    var verbose = false

    @Flag(name: .customLong("no-color"), help: "Never use colour.")
    var noColor = false

    @Flag(
        name: .customLong("abort-on-prompts"),
        help: "Accepted: govuk-fab never prompts on a host (sudo -n, no password auth).")
    var abortOnPrompts = false

    @Flag(help: "Accepted: output is always printed a whole line at a time.")
    var linewise = false

    @Flag(name: .customLong("no-pty"), help: "Accepted: govuk-fab never asks for a pty.")
    var noPTY = false

    @Flag(
        name: [.customShort("e"), .customLong("eagerly-disconnect")],
        help: "Accepted: each host's session closes after its last task.")
    var eagerlyDisconnect = false

    @Flag(name: .customLong("colorize-errors"), help: "Accepted: errors are one line on stderr.")
    var colorizeErrors = false

    func validate() throws { _ = try levels() }

    /// `--show`/`--hide` as output levels.
    func levels() throws -> OutputLevels { try OutputLevels.parse(show: show, hide: hide) }
}

/// Information that needs no environment.
struct InformationOptions: ParsableArguments {
    @Flag(
        name: [.customShort("l"), .customLong("list")],
        help: "List every task with its one-line description (no ENVIRONMENT needed).")
    var list = false

    @Flag(help: "List task names only, one per line.")
    var shortlist = false

    @Option(
        name: [.customShort("F"), .customLong("list-format")],
        help: ArgumentHelp(
            "--list format: short, normal or nested (ssh_config is --ssh-config-path).", valueName: "format"),
        completion: .list(["short", "normal", "nested"]))
    var listFormat: String?

    @Option(
        name: [.customShort("d"), .customLong("display")],
        help: ArgumentHelp("Show the help of task NAME (as help:NAME).", valueName: "task"))
    var display: String?

    /// `--version` is ArgumentParser's (from `configuration.version`); `-V` is Fabric's spelling.
    @Flag(name: .customShort("V"), help: "Print the version and exit (as --version).")
    var version = false

    func validate() throws { _ = try format() }

    /// `-F`, or `short` for `--shortlist`.
    func format() throws -> ListFormat {
        if shortlist { return .short }
        guard let listFormat else { return .normal }
        guard let format = ListFormat(rawValue: listFormat) else {
            throw ValidationError(
                "-F/--list-format: '\(listFormat)' is not short, normal or nested"
                    + " (-F is Fabric's --list-format; for an ssh_config file use --ssh-config-path PATH)")
        }
        return format
    }

    /// Whether the command line asks only for information (no ENVIRONMENT needed).
    var isInformational: Bool { list || shortlist || display != nil || version }
}
