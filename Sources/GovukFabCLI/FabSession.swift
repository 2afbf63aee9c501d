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

    func run() async -> Int32 {
        let registry: TaskRegistry
        do {
            registry = try TaskRegistry.standard(playbookDirectories: ResourcePaths.playbookDirectories(environment))
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        if invocation.list {
            console.printTaskList(registry.descriptors)
            return 0
        }
        guard let environmentName = invocation.words.first else {
            return console.fail("missing ENVIRONMENT, e.g. govuk-fab production puppet_class:gor check-goreplay", code: .usage)
        }

        // Inventory.
        var inventory: Inventory
        do {
            if let path = invocation.inventoryPath {
                inventory = try InventoryLoader.load(file: path, defaultName: environmentName)
            } else {
                inventory = try InventoryLoader.load(
                    environment: environmentName, searchPaths: ResourcePaths.inventorySearchPaths(environment))
            }
        } catch {
            return console.fail("\(error)", code: .usage)
        }

        // A live source answers the selectors of this command line (cached for cache_ttl).
        if inventory.source != .file {
            let words = (try? FabricCommandLine.parse(Array(invocation.words.dropFirst()), indexOffset: 1)) ?? []
            var options = SSHClientOptions.from(inventory, connectTimeout: invocation.connectTimeout)
            if let socket = environment["SSH_AUTH_SOCK"], !socket.isEmpty { options.agentSocketPath = socket } else { options.useAgent = false }
            var logger = Logger(label: "govuk-fab")
            logger.logLevel = environment["GOVUK_FAB_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
            let lister = LiveHostLister(
                inventory: inventory, options: options, cacheDirectory: LiveHostLister.defaultCacheDirectory(environment),
                refresh: invocation.refresh, logger: logger)
            do {
                inventory = try await lister.resolve(HostListQuery.queries(for: words))
            } catch {
                return console.fail("\(error)", code: .hostFailed)
            }
        }

        // Command words → plan.
        let words: [CommandWord]
        let plan: CommandPlan
        do {
            words = try FabricCommandLine.parse(Array(invocation.words.dropFirst()), indexOffset: 1)
            plan = try CommandPlan.make(
                words: words, inventory: inventory,
                explicitHosts: invocation.hosts.flatMap { $0.split(separator: ",").map(String.init) },
                excluding: invocation.excludeHosts.flatMap { $0.split(separator: ",").map(String.init) },
                hostlessTasks: ["classes", "help"])
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
        var logger = Logger(label: "govuk-fab")
        logger.logLevel = environment["GOVUK_FAB_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let context = RunContext(
            inventory: inventory, time: time, dryRun: invocation.dryRun, force: invocation.force,
            commandTimeout: invocation.commandTimeout ?? inventory.ssh.commandTimeout, logger: logger)

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
                planned += try registry.plannedTasks(step.task, hosts: step.hosts, inventory: inventory)
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
        var client = SSHClientOptions.from(inventory, connectTimeout: invocation.connectTimeout)
        if let socket = environment["SSH_AUTH_SOCK"], !socket.isEmpty { client.agentSocketPath = socket } else { client.useAgent = false }
        let policy: FailurePolicy = invocation.warnOnly ? .warnOnly : invocation.abortOnFailure ? .abortOnFailure : .dropFailedHosts
        var connections: HostConnectionResolver?
        do {
            if let config = try SSHConfigLayer.load(path: invocation.sshConfigFile) {
                let layer = SSHConfigLayer(
                    config: config, inventory: inventory, base: client, commandLineConnectTimeout: invocation.connectTimeout)
                var seen = Set<String>()
                let hosts = planned.flatMap(\.hosts).filter { seen.insert($0.name).inserted }
                for warning in layer.warnings(for: hosts) { console.warn(warning) }
                connections = { layer.connection(for: $0) }
            }
        } catch {
            return console.fail("\(error)", code: .usage)
        }
        let options = RunnerOptions(
            parallelism: invocation.parallel ?? inventory.parallelism, failurePolicy: policy, client: client,
            connections: connections)
        let console = self.console
        let runner = FleetRunner(context: context, options: options) { console.emit($0) }
        let runTask = Task { await runner.run(planned) }
        let interrupts = InterruptWatcher { runTask.cancel() }
        let report = await runTask.value
        interrupts.stop()

        // Audit, also when interrupted.
        if let log = AuditLog(environment: environment) {
            let user = environment["USER"] ?? environment["LOGNAME"] ?? "unknown"
            do {
                try log.append(AuditRecord(user: user, argv: invocation.argv, summary: report.summary))
            } catch {
                console.warn("\(error)")
            }
        }
        return report.exitStatus
    }
}

/// Where inventories and playbooks are found: the working directory first,
/// then the directory named by an environment variable, then the checkout
/// the binary was built in (so `.build/release/govuk-fab` works from anywhere).
enum ResourcePaths {
    static func inventorySearchPaths(_ environment: [String: String]) -> [String] {
        var paths = InventoryLoader.defaultSearchPaths(environment: environment)
        if let root = checkoutRoot() { paths.append(root + "/inventories") }
        return unique(paths)
    }

    static func playbookDirectories(_ environment: [String: String]) -> [String] {
        var paths = ["playbooks"]
        if let dir = environment["GOVUK_FAB_PLAYBOOK_DIR"], !dir.isEmpty { paths.append(dir) }
        if let root = checkoutRoot() { paths.append(root + "/playbooks") }
        return unique(paths).filter { FileManager.default.fileExists(atPath: $0) }
    }

    static func checkoutRoot() -> String? { CheckoutLocator.root() }

    private static func unique(_ paths: [String]) -> [String] {
        var seen = Set<String>()
        return paths.filter { seen.insert(URL(fileURLWithPath: $0).standardizedFileURL.path).inserted }
    }
}
