import Fleet
import FleetTasks
import Foundation
import Logging
import SSHConfig
import SSHTransport

/// Why a stage of a run stopped it: the one-line message and the documented exit status.
struct SessionFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: FleetExitCode
    var description: String { message }

    init(_ message: String, _ exitCode: FleetExitCode) {
        self.message = message
        self.exitCode = exitCode
    }

    /// `error` as a failure of `exitCode`, or of its own code when it carries one.
    init(_ error: any Error, _ exitCode: FleetExitCode) {
        if let selection = error as? SelectionError {
            self.init("\(selection)", selection.exitCode)
        } else {
            self.init("\(error)", exitCode)
        }
    }
}

/// One run of govuk-fab, in named stages: loadRegistry → (information) → loadInventory →
/// resolveLive → plan → makeContext → planTasks → locateBinaries → preflight → confirm → run
/// (with the audit). Each stage throws a ``SessionFailure`` carrying its exit status, which
/// ``run()`` prints as the one-line error.
struct FabSession {
    let invocation: Invocation
    let local: LocalEnvironment
    let console: Console
    let interrupts: InterruptSource
    let search: ConfigurationSearch
    let logger: Logger

    init(
        invocation: Invocation, local: LocalEnvironment, io: ConsoleIO = .standard,
        interrupts: InterruptSource? = nil, search: ConfigurationSearch? = nil
    ) {
        self.invocation = invocation
        self.local = local
        let console = Console(json: invocation.json, colour: invocation.colour, local: local, io: io)
        self.console = console
        self.interrupts = interrupts ?? .signals(report: { console.note($0) })
        self.search =
            search ?? ConfigurationSearch(configDirectory: invocation.configDirectory, environment: local.variables)
        self.logger = Self.makeLogger(invocation, local: local)
    }

    func run() async -> Int32 {
        do {
            return try await stages()
        } catch {
            return console.fail(error.message, code: error.exitCode)
        }
    }

    private func stages() async throws(SessionFailure) -> Int32 {
        let registry = try loadRegistry()
        // Information that needs no environment: -l, --shortlist, -F, -d NAME, help:TASK.
        if let status = try information(registry) { return status }
        try checkIdentityFiles()
        var (inventory, origin) = try loadInventory(try environmentName())
        let words = try commandWords()
        inventory = try await resolveLive(inventory, words: words)
        let plan = try plan(words, inventory: inventory, registry: registry)
        let client = clientOptions(for: inventory)
        let (context, layer) = try makeContext(
            inventory, client: client,
            readsSSHConfig: plan.steps.contains {
                !Self.localTasks.contains($0.task.name)
            })
        let planned = try planTasks(plan, registry: registry, context: context)
        if planned.isEmpty { return 0 }
        try locateBinaries(planned)
        try preflight(planned, context: context, client: client)
        try confirm(planned, plan: plan, inventory: inventory)
        return await runAndAudit(planned, context: context, client: client, layer: layer, origin: origin)
    }

    // MARK: Stages

    func loadRegistry() throws(SessionFailure) -> TaskRegistry {
        if let warning = search.unreadPlaybooks() { console.warn(warning) }
        do {
            return try TaskRegistry.standard(playbookDirectories: search.playbookDirectories.map(\.path))
        } catch {
            throw SessionFailure(error, .usage)
        }
    }

    /// `-l`, `-d NAME`, `help`, `help:NAME`: the status when the command line asked only for that.
    func information(_ registry: TaskRegistry) throws(SessionFailure) -> Int32? {
        if invocation.list {
            printTaskList(registry.descriptors, format: invocation.listFormat)
            return 0
        }
        if let name = invocation.display {
            try showHelp(name, registry: registry)
            return 0
        }
        guard let first = invocation.words.first, first == "help" || first.hasPrefix("help:") else { return nil }
        guard invocation.words.count == 1 else {
            throw SessionFailure(
                "word 2 '\(invocation.words[1])': '\(first)' without an environment takes no other words;"
                    + " to run tasks put the environment first, e.g. govuk-fab production \(invocation.words[1])",
                .usage)
        }
        let name = String(first.dropFirst("help".count).drop { $0 == ":" })
        if name.isEmpty {
            printTaskList(registry.descriptors, format: invocation.listFormat)
        } else {
            try showHelp(name, registry: registry)
        }
        return 0
    }

    func checkIdentityFiles() throws(SessionFailure) {
        for file in invocation.identityFiles where !FileManager.default.isReadableFile(atPath: local.expandTilde(file))
        {
            throw SessionFailure("-i \(file): no readable key file there; give the path of a private key", .usage)
        }
    }

    func environmentName() throws(SessionFailure) -> String {
        guard let name = invocation.words.first else {
            throw SessionFailure(
                "missing ENVIRONMENT, e.g. govuk-fab production puppet_class:gor check-goreplay", .usage)
        }
        return name
    }

    /// The words after the environment, parsed once, with `-- COMMAND` as a last `do:` (as
    /// Fabric's remainder command ran on the hosts selected so far).
    func commandWords() throws(SessionFailure) -> [CommandWord] {
        var words: [CommandWord]
        do {
            words = try FabricCommandLine.parse(Array(invocation.words.dropFirst()), indexOffset: 1)
        } catch {
            throw SessionFailure(error, .usage)
        }
        if let command = invocation.remainderCommand {
            guard !command.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw SessionFailure("'--' needs a command after it, e.g. -- uname -a", .usage)
            }
            words.append(.task(TaskInvocation(name: "do", positional: [command], raw: "-- " + command)))
        }
        return words
    }

    /// `--inventory`, else the search path (never the current directory unasked), with the
    /// command line's connection settings over the inventory's (and so ssh_config's).
    func loadInventory(_ environmentName: String) throws(SessionFailure) -> (Inventory, InventoryOrigin) {
        var inventory: Inventory
        do {
            if let path = invocation.inventoryPath {
                inventory = try InventoryLoader.load(file: path, defaultName: environmentName)
            } else {
                inventory = try InventoryLoader.load(
                    environment: environmentName, searchPaths: search.inventoryDirectories.map(\.path))
            }
        } catch {
            if invocation.inventoryPath == nil,
                let warning = search.unreadInventory(environment: environmentName, used: nil)
            {
                console.warn(warning)
            }
            throw SessionFailure(error, .usage)
        }
        let origin: InventoryOrigin
        if invocation.inventoryPath == nil {
            origin = search.origin(ofInventoryAt: inventory.sourcePath)
            if let warning = search.unreadInventory(environment: environmentName, used: origin.path) {
                console.warn(warning)
            }
        } else {
            origin = InventoryOrigin(
                path: URL(fileURLWithPath: inventory.sourcePath).standardizedFileURL.path, source: .inventoryOption)
        }
        console.use(inventory: origin)
        if let user = invocation.user {
            inventory.ssh.user = user
            inventory.ssh.explicitKeys.insert("user")
        }
        if let port = invocation.port {
            inventory.ssh.port = port
            inventory.ssh.explicitKeys.insert("port")
        }
        if let gateway = invocation.gateway {
            inventory.ssh.gateway = [gateway]
            inventory.ssh.explicitKeys.insert("gateway")
        }
        return (inventory, origin)
    }

    /// A live source answers the selectors of this command line (cached for cache_ttl).
    func resolveLive(_ inventory: Inventory, words: [CommandWord]) async throws(SessionFailure) -> Inventory {
        guard inventory.source != .file else { return inventory }
        var words = words
        // Roles (-R, role=/roles=) are node classes, so the source is asked for them too.
        let roles =
            invocation.roles
            + words.flatMap { word -> [String] in
                if case .task(let task) = word { return task.roles }
                return []
            }
        if !roles.isEmpty { words.append(.selector(.nodeClass(roles))) }
        var lister = LiveHostLister(
            inventory: inventory, options: clientOptions(for: inventory),
            cacheDirectory: LiveHostLister.defaultCacheDirectory(local.variables), refresh: invocation.refresh,
            logger: logger, localUser: local.user)
        if invocation.dryRun {
            // A dry run must still know its hosts, so the live source is asked; say so (#15).
            let console = self.console
            lister.willQuerySource = { what in console.note("dry run: the host list is live: \(what); no task runs") }
        }
        do {
            return try await lister.resolve(HostListQuery.queries(for: words))
        } catch {
            throw SessionFailure(error, .hostFailed)
        }
    }

    func plan(_ words: [CommandWord], inventory: Inventory, registry: TaskRegistry) throws(SessionFailure)
        -> CommandPlan
    {
        let plan: CommandPlan
        do {
            plan = try CommandPlan.make(
                words: words, inventory: inventory, explicitHosts: invocation.hosts, roles: invocation.roles,
                excluding: invocation.excludeHosts,
                hostlessTasks: Set(["classes", "help"]).union(registry.pinnedTaskNames),
                knownTasks: Set(registry.descriptors.map(\.name)).union(["hosts", "classes", "help"]))
        } catch {
            throw SessionFailure(error, .usage)
        }
        for warning in plan.warnings { console.warn(warning) }
        return plan
    }

    /// The run's context: time, logger, the local environment and each host's connection
    /// (ssh_config layered under the inventory, when there is one), so `--dry-run` shows the
    /// login user the run uses.
    /// Tasks printed locally, which need no connection (and so no ssh_config).
    static let localTasks: Set<String> = ["hosts", "classes", "help"]

    func makeContext(_ inventory: Inventory, client: SSHClientOptions, readsSSHConfig: Bool) throws(SessionFailure)
        -> (RunContext, SSHConfigLayer?)
    {
        let time: TimeSource
        do {
            time = try TimeSource.from(environment: local.variables)
        } catch {
            throw SessionFailure(error, .usage)
        }
        let layer: SSHConfigLayer?
        do {
            layer = try (readsSSHConfig ? SSHConfigLayer.load(path: invocation.sshConfigFile, local: local) : nil).map {
                config in
                var layer = SSHConfigLayer(
                    config: config, inventory: inventory, base: client,
                    commandLineConnectTimeout: invocation.connectTimeout,
                    localUser: local.user)
                layer.usesConfigIdentityFiles = !invocation.noKeys
                layer.commandLineKeepalive = invocation.keepalive != nil
                return layer
            }
        } catch {
            throw SessionFailure(error, .usage)
        }
        var connections: HostConnectionResolver?
        if let layer { connections = { layer.connection(for: $0) } }
        let context = RunContext(
            inventory: inventory, time: time, dryRun: invocation.dryRun, force: invocation.force,
            commandTimeout: invocation.commandTimeout ?? inventory.ssh.commandTimeout, logger: logger,
            settings: invocation.settings, local: local, connections: connections)
        return (context, layer)
    }

    /// Host tasks for the plan's steps; `hosts`, `classes` and `help` are printed here.
    func planTasks(_ plan: CommandPlan, registry: TaskRegistry, context: RunContext) throws(SessionFailure)
        -> [PlannedTask]
    {
        var planned: [PlannedTask] = []
        var localOutput: [String] = []
        for step in plan.steps {
            switch step.task.name {
            case "hosts":
                localOutput += console.hostListing(step.hosts)
                continue
            case "classes":
                localOutput += console.classListing(context.inventory.classSummary())
                continue
            case "help":
                guard let name = step.task.positional.first else {
                    console.printTaskList(registry.descriptors)
                    continue
                }
                guard let descriptor = registry.descriptor(named: name) else {
                    let hint = NameSuggestions.hint(NameSuggestions.near(name, in: registry.descriptors.map(\.name)))
                    throw SessionFailure("help: no task named '\(name)'\(hint); see --list", .usage)
                }
                localOutput += console.helpText(descriptor)
                continue
            default:
                break
            }
            do {
                // A playbook with pinned steps or calls becomes several host tasks.
                planned += try registry.plannedTasks(step.task, hosts: step.hosts, context: context)
            } catch {
                throw SessionFailure(error, .usage)
            }
        }
        console.emitLocal(localOutput)
        return planned
    }

    /// Checks before touching any host: each task's preflight, then the login keys.
    func preflight(_ planned: [PlannedTask], context: RunContext, client: SSHClientOptions) throws(SessionFailure) {
        for item in planned {
            do {
                try item.task.preflight(context)
            } catch {
                throw SessionFailure(error, .refused)
            }
        }
        if !invocation.dryRun, let problem = loginKeyProblem(client) {
            if problem.stopsTheRun { throw SessionFailure(problem.message, .usage) }
            console.warn(problem.message)
        }
    }

    /// deploy-goreplay's binary, located (or built) here so the task only uploads what it is given.
    func locateBinaries(_ planned: [PlannedTask]) throws(SessionFailure) {
        let console = self.console
        let locator = ReplayBinaryLocator(
            variables: local.variables, checkoutRoot: search.checkoutRoot, announce: { console.note($0) })
        for (task, source) in ReplayBinarySource.sources(in: planned) where !source.isResolved {
            do {
                source.provide(try locator.locate(explicit: source.explicit))
            } catch {
                throw SessionFailure("\(TaskRefusal(task: task, reason: error.reason, remedy: error.remedy))", .refused)
            }
        }
    }

    func confirm(_ planned: [PlannedTask], plan: CommandPlan, inventory: Inventory) throws(SessionFailure) {
        guard !invocation.dryRun else { return }
        switch ConfirmationPolicy.decide(
            inventory: inventory, plan: plan, changesHosts: planned.contains { $0.task.changesHosts },
            assumeYes: invocation.yes, canPrompt: local.stdinIsTerminal)
        {
        case .proceed:
            return
        case .refuse(let reason):
            throw SessionFailure(reason, .refused)
        case .ask(let prompt):
            guard console.confirm(prompt) else { throw SessionFailure("not confirmed; nothing was run", .refused) }
        }
    }

    /// The run, with Ctrl-C stopping scheduling and closing remote commands; the audit log has
    /// "started" before any host is touched, then "finished" (also when interrupted) or
    /// "abandoned" when a second Ctrl-C exits at once.
    func runAndAudit(
        _ planned: [PlannedTask], context: RunContext, client: SSHClientOptions, layer: SSHConfigLayer?,
        origin: InventoryOrigin
    ) async -> Int32 {
        var seen = Set<String>()
        let hosts = planned.flatMap(\.hosts).filter { seen.insert($0.name).inserted }
        for warning in layer?.warnings(for: hosts) ?? [] { console.warn(warning) }
        let policy: FailurePolicy =
            invocation.warnOnly ? .warnOnly : invocation.abortOnFailure ? .abortOnFailure : .dropFailedHosts
        var options = RunnerOptions(
            parallelism: invocation.parallel ?? context.inventory.parallelism, failurePolicy: policy,
            client: client)
        options.connectionAttempts = invocation.connectionAttempts
        options.skipBadHosts = invocation.skipBadHosts
        let console = self.console
        let levels = invocation.outputLevels
        let audit = RunAudit(
            log: AuditLog(environment: local.variables),
            user: local.user,
            argv: invocation.argv, inventory: origin, warn: { console.warn($0) })
        audit.started(
            environment: context.inventory.name, hosts: hosts.map(\.name), tasks: planned.map(\.task.invocation.raw))
        let runner = FleetRunner(context: context, options: options) { event in
            audit.observe(event)
            if levels.shows(event) { console.emit(event) }
        }
        let runTask = Task { await runner.run(planned) }
        let stop = interrupts.watch({ audit.abandoned() }, { runTask.cancel() })
        let report = await runTask.value
        stop()
        audit.finished(report.summary)
        return report.exitStatus
    }
}

extension FabSession {
    /// swift-log on stderr: `GOVUK_FAB_LOG_LEVEL` if set, else debug with `-v` or `--show debug`, else warnings.
    static func makeLogger(_ invocation: Invocation, local: LocalEnvironment) -> Logger {
        var logger = Logger(label: "govuk-fab")
        logger.logLevel =
            local.variables["GOVUK_FAB_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? (invocation.verbose || invocation.outputLevels.shows(.debug) ? .debug : .warning)
        return logger
    }

    /// SSH client options from the inventory with the command line's -t, -i, -k, -a, --keepalive
    /// and --system-known-hosts applied.
    func clientOptions(for inventory: Inventory) -> SSHClientOptions {
        var options = SSHClientOptions.from(inventory, connectTimeout: invocation.connectTimeout, local: local)
        if let socket = local.agentSocket, invocation.useAgent {
            options.agentSocketPath = socket
        } else {
            options.useAgent = false
        }
        let given = invocation.identityFiles.map(local.expandTilde)
        options.identityFiles = given + (invocation.noKeys ? [] : options.identityFiles.filter { !given.contains($0) })
        if let keepalive = invocation.keepalive {
            options.keepaliveInterval = keepalive == 0 ? nil : .seconds(keepalive)
        }
        if invocation.systemKnownHosts, !options.knownHostsFiles.contains(SSHConfigLayer.systemKnownHostsFile) {
            options.knownHostsFiles.append(SSHConfigLayer.systemKnownHostsFile)
        }
        return options
    }

    /// Identity files that are not there. OpenSSH warns and logs in with what is left; when
    /// nothing is left (no readable file, no agent, no ssh_config that could name another key)
    /// every host would fail authentication, so the run stops before connecting (#11).
    func loginKeyProblem(_ options: SSHClientOptions) -> (message: String, stopsTheRun: Bool)? {
        let missing = options.identityFiles.filter { !FileManager.default.isReadableFile(atPath: $0) }
        guard !missing.isEmpty else { return nil }
        let files = missing.joined(separator: ", ")
        let usable = missing.count < options.identityFiles.count || (options.useAgent && options.agentSocketPath != nil)
        let configMayAddKeys =
            invocation.sshConfigFile.map { $0 != "none" && $0 != "/dev/null" }
            ?? FileManager.default.fileExists(atPath: local.expandTilde("~/.ssh/config"))
        if usable || configMayAddKeys {
            return ("identity file \(files): no readable key there; logging in with the other keys", false)
        }
        return (
            "no key to log in with: identity file \(files) is not there (or not readable) and no ssh-agent is in use;"
                + " fix identity_files in the inventory or give -i, or load the key into ssh-agent; nothing was run",
            true
        )
    }

    /// `--list` in Fabric's formats: `short` (names), `normal` (names and summaries), `nested`
    /// (names grouped by their dotted prefix).
    func printTaskList(_ descriptors: [TaskDescriptor], format: ListFormat) {
        // JSON has one shape: a task event per task, whatever the text format.
        switch console.json ? .normal : format {
        case .normal:
            console.printTaskList(descriptors)
        case .short:
            console.emitLocal(descriptors.map(\.name))
        case .nested:
            var lines: [String] = []
            var group: String?
            for name in descriptors.map(\.name).sorted() {
                let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
                if parts.count == 2 {
                    if group != parts[0] { lines.append("\(parts[0]):") }
                    group = parts[0]
                    lines.append("    " + parts[1])
                } else {
                    group = nil
                    lines.append(name)
                }
            }
            console.emitLocal(lines)
        }
    }

    /// `-d NAME` and `help:NAME`.
    func showHelp(_ name: String, registry: TaskRegistry) throws(SessionFailure) {
        let builtIns = ["hosts", "classes", "help"]
        guard let descriptor = registry.descriptor(named: name) else {
            let known = registry.descriptors.map(\.name) + builtIns
            let hint = NameSuggestions.hint(NameSuggestions.near(name, in: known))
            throw SessionFailure("no task named '\(name)'\(hint); see govuk-fab --list", .usage)
        }
        console.emitLocal(console.helpText(descriptor))
    }
}
