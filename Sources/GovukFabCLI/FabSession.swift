import Fleet
import FleetTasks
import Foundation
import Logging
import SSHConfig
import SSHTransport

/// One run of govuk-fab: inventory → plan → confirmation → runner → output,
/// audit. Every failure path ends in a documented exit status and a one-line
/// error that says what to do.
struct FabSession {
    let invocation: Invocation
    let environment: [String: String]
    let console: Console

    init(invocation: Invocation, environment: [String: String]) {
        self.invocation = invocation
        self.environment = environment
        self.console = Console(json: invocation.json, colour: invocation.colour)
    }

    var search: ConfigurationSearch {
        ConfigurationSearch(configDirectory: invocation.configDirectory, environment: environment)
    }

    func run() async -> Int32 {
        let search = self.search
        if let warning = search.unreadPlaybooks() { console.warn(warning) }
        let registry: TaskRegistry
        do {
            registry = try TaskRegistry.standard(playbookDirectories: search.playbookDirectories.map(\.path))
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        // Information that needs no environment: -l, --shortlist, -F, -d NAME, help:TASK.
        if invocation.list {
            printTaskList(registry.descriptors, format: invocation.listFormat)
            return 0
        }
        if let name = invocation.display {
            return showHelp(name, registry: registry)
        }
        if let first = invocation.words.first, first == "help" || first.hasPrefix("help:") {
            guard invocation.words.count == 1 else {
                return console.fail("word 2 '\(invocation.words[1])': '\(first)' without an environment takes no other words;"
                    + " to run tasks put the environment first, e.g. govuk-fab production \(invocation.words[1])", code: .usage)
            }
            let name = String(first.dropFirst("help".count).drop { $0 == ":" })
            if name.isEmpty {
                printTaskList(registry.descriptors, format: invocation.listFormat)
                return 0
            }
            return showHelp(name, registry: registry)
        }
        for file in invocation.identityFiles where !FileManager.default.isReadableFile(atPath: expandTilde(file)) {
            return console.fail("-i \(file): no readable key file there; give the path of a private key", code: .usage)
        }
        guard let environmentName = invocation.words.first else {
            return console.fail("missing ENVIRONMENT, e.g. govuk-fab production puppet_class:gor check-goreplay", code: .usage)
        }

        // Inventory: --inventory, else the search path (never the current directory unasked).
        var inventory: Inventory
        do {
            if let path = invocation.inventoryPath {
                inventory = try InventoryLoader.load(file: path, defaultName: environmentName)
            } else {
                inventory = try InventoryLoader.load(
                    environment: environmentName, searchPaths: search.inventoryDirectories.map(\.path))
            }
        } catch {
            if invocation.inventoryPath == nil, let warning = search.unreadInventory(environment: environmentName, used: nil) {
                console.warn(warning)
            }
            return console.fail("\(error)", code: .usage)
        }
        let inventoryOrigin: InventoryOrigin
        if invocation.inventoryPath == nil {
            inventoryOrigin = search.origin(ofInventoryAt: inventory.sourcePath)
            if let warning = search.unreadInventory(environment: environmentName, used: inventoryOrigin.path) { console.warn(warning) }
        } else {
            inventoryOrigin = InventoryOrigin(
                path: URL(fileURLWithPath: inventory.sourcePath).standardizedFileURL.path, source: .inventoryOption)
        }
        console.use(inventory: inventoryOrigin)
        // Command-line connection settings beat the inventory's (and so ssh_config's).
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

        // A live source answers the selectors of this command line (cached for cache_ttl).
        if inventory.source != .file {
            var words = (try? FabricCommandLine.parse(Array(invocation.words.dropFirst()), indexOffset: 1)) ?? []
            // Roles (-R, role=/roles=) are node classes, so the source is asked for them too.
            let roles = invocation.roles + words.flatMap { word -> [String] in
                if case .task(let task) = word { return task.roles }
                return []
            }
            if !roles.isEmpty { words.append(.selector(.nodeClass(roles))) }
            let options = clientOptions(for: inventory)
            let logger = makeLogger()
            var lister = LiveHostLister(
                inventory: inventory, options: options, cacheDirectory: LiveHostLister.defaultCacheDirectory(environment),
                refresh: invocation.refresh, logger: logger)
            if invocation.dryRun {
                // A dry run must still know its hosts, so the live source is asked; say so (#15).
                lister.willQuerySource = { what in
                    Console.write("govuk-fab: dry run: the host list is live: \(what); no task runs\n", to: STDERR_FILENO)
                }
            }
            do {
                inventory = try await lister.resolve(HostListQuery.queries(for: words))
            } catch {
                return console.fail("\(error)", code: .hostFailed)
            }
        }

        // Command words → plan.
        var words: [CommandWord]
        let plan: CommandPlan
        do {
            words = try FabricCommandLine.parse(Array(invocation.words.dropFirst()), indexOffset: 1)
            // `-- COMMAND` runs last on the hosts selected so far, as Fabric's remainder command did.
            if let command = invocation.remainderCommand {
                guard !command.trimmingCharacters(in: .whitespaces).isEmpty else {
                    return console.fail("'--' needs a command after it, e.g. -- uname -a", code: .usage)
                }
                words.append(.task(TaskInvocation(name: "do", positional: [command], raw: "-- " + command)))
            }
            plan = try CommandPlan.make(
                words: words, inventory: inventory, explicitHosts: invocation.hosts, roles: invocation.roles,
                excluding: invocation.excludeHosts, hostlessTasks: Set(["classes", "help"]).union(registry.pinnedTaskNames),
                knownTasks: Set(registry.descriptors.map(\.name)).union(["hosts", "classes", "help"]))
        } catch let error as SelectionError {
            return console.fail("\(error)", code: error.exitCode)
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        for warning in plan.warnings { console.warn(warning) }

        let time: TimeSource
        do {
            time = try TimeSource.from(environment: environment)
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        let logger = makeLogger()
        let context = RunContext(
            inventory: inventory, time: time, dryRun: invocation.dryRun, force: invocation.force,
            commandTimeout: invocation.commandTimeout ?? inventory.ssh.commandTimeout, logger: logger,
            settings: invocation.settings)

        // Host-less tasks and tasks.
        var planned: [PlannedTask] = []
        var localOutput: [String] = []
        for step in plan.steps {
            switch step.task.name {
            case "hosts":
                localOutput += console.hostListing(step.hosts)
                continue
            case "classes":
                localOutput += console.classListing(inventory.classSummary())
                continue
            case "help":
                guard let name = step.task.positional.first else {
                    console.printTaskList(registry.descriptors)
                    continue
                }
                guard let descriptor = registry.descriptor(named: name) else {
                    let hint = NameSuggestions.hint(NameSuggestions.near(name, in: registry.descriptors.map(\.name)))
                    return console.fail("help: no task named '\(name)'\(hint); see --list", code: .usage)
                }
                localOutput += console.helpText(descriptor)
                continue
            default:
                break
            }
            do {
                // A playbook with pinned steps or calls becomes several host tasks.
                planned += try registry.plannedTasks(step.task, hosts: step.hosts, inventory: inventory,
                                                     settings: invocation.settings)
            } catch {
                return console.fail("\(error)", code: .usage)
            }
        }
        console.emitLocal(localOutput)
        if planned.isEmpty { return 0 }

        // Checks before touching any host.
        for item in planned {
            do {
                try item.task.preflight(context)
            } catch {
                return console.fail("\(error)", code: .refused)
            }
        }
        if !invocation.dryRun, let problem = loginKeyProblem(clientOptions(for: inventory)) {
            if problem.stopsTheRun { return console.fail(problem.message, code: .usage) }
            console.warn(problem.message)
        }
        let changes = planned.contains { $0.task.changesHosts }
        if !invocation.dryRun {
            switch ConfirmationPolicy.decide(
                inventory: inventory, plan: plan, changesHosts: changes, assumeYes: invocation.yes,
                canPrompt: Console.stdinIsTerminal)
            {
            case .proceed:
                break
            case .refuse(let reason):
                return console.fail(reason, code: .refused)
            case .ask(let prompt):
                guard console.confirm(prompt) else { return console.fail("not confirmed; nothing was run", code: .refused) }
            }
        }

        // Run, with Ctrl-C stopping scheduling and closing remote commands.
        let client = clientOptions(for: inventory)
        let policy: FailurePolicy = invocation.warnOnly ? .warnOnly : invocation.abortOnFailure ? .abortOnFailure : .dropFailedHosts
        var connections: HostConnectionResolver?
        do {
            if let config = try SSHConfigLayer.load(path: invocation.sshConfigFile) {
                var layer = SSHConfigLayer(
                    config: config, inventory: inventory, base: client, commandLineConnectTimeout: invocation.connectTimeout)
                layer.usesConfigIdentityFiles = !invocation.noKeys
                layer.commandLineKeepalive = invocation.keepalive != nil
                var seen = Set<String>()
                let hosts = planned.flatMap(\.hosts).filter { seen.insert($0.name).inserted }
                for warning in layer.warnings(for: hosts) { console.warn(warning) }
                let configured = layer
                connections = { configured.connection(for: $0) }
            }
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        var options = RunnerOptions(
            parallelism: invocation.parallel ?? inventory.parallelism, failurePolicy: policy, client: client,
            connections: connections)
        options.connectionAttempts = invocation.connectionAttempts
        options.skipBadHosts = invocation.skipBadHosts
        let console = self.console
        let levels = invocation.outputLevels
        // Audit: "started" before any host is touched, then "finished" (also when interrupted) or
        // "abandoned" when a second Ctrl-C exits at once.
        let audit = RunAudit(
            log: AuditLog(environment: environment), user: environment["USER"] ?? environment["LOGNAME"] ?? "unknown",
            argv: invocation.argv, inventory: inventoryOrigin, warn: { console.warn($0) })
        var seen = Set<String>()
        audit.started(environment: inventory.name, hosts: planned.flatMap(\.hosts).map(\.name).filter { seen.insert($0).inserted },
                      tasks: planned.map(\.task.invocation.raw))
        let runner = FleetRunner(context: context, options: options) { event in
            audit.observe(event)
            if levels.shows(event) { console.emit(event) }
        }
        let runTask = Task { await runner.run(planned) }
        let interrupts = InterruptWatcher(onAbandon: { audit.abandoned() }) { runTask.cancel() }
        let report = await runTask.value
        interrupts.stop()
        audit.finished(report.summary)
        return report.exitStatus
    }
}

extension FabSession {
    /// swift-log on stderr: `GOVUK_FAB_LOG_LEVEL` if set, else debug with `-v` or `--show debug`, else warnings.
    func makeLogger() -> Logger {
        var logger = Logger(label: "govuk-fab")
        logger.logLevel = environment["GOVUK_FAB_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? (invocation.verbose || invocation.outputLevels.shows(.debug) ? .debug : .warning)
        return logger
    }

    /// SSH client options from the inventory with the command line's -t, -i, -k, -a, --keepalive
    /// and --system-known-hosts applied.
    func clientOptions(for inventory: Inventory) -> SSHClientOptions {
        var options = SSHClientOptions.from(inventory, connectTimeout: invocation.connectTimeout)
        if let socket = environment["SSH_AUTH_SOCK"], !socket.isEmpty, invocation.useAgent {
            options.agentSocketPath = socket
        } else {
            options.useAgent = false
        }
        let given = invocation.identityFiles.map(expandTilde)
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
        let configMayAddKeys = invocation.sshConfigFile.map { $0 != "none" && $0 != "/dev/null" }
            ?? FileManager.default.fileExists(atPath: expandTilde("~/.ssh/config"))
        if usable || configMayAddKeys {
            return ("identity file \(files): no readable key there; logging in with the other keys", false)
        }
        return ("no key to log in with: identity file \(files) is not there (or not readable) and no ssh-agent is in use;"
            + " fix identity_files in the inventory or give -i, or load the key into ssh-agent; nothing was run", true)
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
    func showHelp(_ name: String, registry: TaskRegistry) -> Int32 {
        let builtIns = ["hosts", "classes", "help"]
        guard let descriptor = registry.descriptor(named: name) else {
            let known = registry.descriptors.map(\.name) + builtIns
            let hint = NameSuggestions.hint(NameSuggestions.near(name, in: known))
            return console.fail("no task named '\(name)'\(hint); see govuk-fab --list", code: .usage)
        }
        console.emitLocal(console.helpText(descriptor))
        return 0
    }
}
