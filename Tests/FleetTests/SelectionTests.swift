import Foundation
import Testing

@testable import Fleet

let sampleInventory = Inventory(
    name: "production",
    hosts: [
        FleetHost(
            name: "cache-1", address: "10.0.0.1", puppetClasses: ["govuk::node::s_cache", "router::gor", "Gor"],
            nodeType: "cache"),
        FleetHost(
            name: "cache-2", address: "10.0.0.2", puppetClasses: ["govuk::node::s_cache", "router::gor", "gor"],
            nodeType: "cache"),
        FleetHost(
            name: "content-store-1", address: "10.0.0.3",
            puppetClasses: ["govuk::node::s_content_store", "govuk::apps::content_store", "gor"]),
        FleetHost(
            name: "bouncer-1", address: "10.0.0.4", puppetClasses: ["govuk::node::s_bouncer", "govuk_bouncer::gor"]),
        FleetHost(
            name: "backend-1", address: "10.0.0.5", puppetClasses: ["govuk::node::s_backend", "govuk::apps::publisher"]),
        FleetHost(name: "backend-10", address: "10.0.0.15", puppetClasses: ["govuk::node::s_backend"]),
        FleetHost(name: "frontend_app-1", address: "10.0.0.6", nodeClass: "frontend_app"),
    ])

func names(_ selectors: [Selector], excluding: [String] = []) throws -> [String] {
    try sampleInventory.select(selectors, excluding: excluding).hosts.map(\.name)
}

func selectionError(_ selectors: [Selector], excluding: [String] = []) -> SelectionError? {
    do {
        _ = try sampleInventory.select(selectors, excluding: excluding)
        return nil
    } catch {
        return error
    }
}

@Suite("Host selectors")
struct SelectionTests {
    @Test func puppetClassIsAnExactCaseInsensitiveTitle() throws {
        #expect(try names([.puppetClass(["gor"])]) == ["cache-1", "cache-2", "content-store-1"])
        #expect(try names([.puppetClass(["GOR"])]) == ["cache-1", "cache-2", "content-store-1"])
        #expect(try names([.puppetClass(["::gor"])]) == ["cache-1", "cache-2", "content-store-1"])
        #expect(try names([.puppetClass(["Router::Gor"])]) == ["cache-1", "cache-2"])
        // `gor` does not match `govuk_bouncer::gor`: PuppetDB matched the exact class title.
        #expect(try !names([.puppetClass(["gor"])]).contains("bouncer-1"))
    }

    @Test func nodeClassTypeAndApplication() throws {
        #expect(try names([.nodeClass(["cache"])]) == ["cache-1", "cache-2"])
        #expect(try names([.nodeClass(["content_store"])]) == ["content-store-1"])
        #expect(try names([.nodeClass(["frontend-app"])]) == ["frontend_app-1"])
        #expect(try names([.nodeType(["cache"])]) == ["cache-1", "cache-2"])
        #expect(try names([.nodeType(["content-store"])]) == ["content-store-1"]) // via govuk::node::s_content_store
        #expect(try names([.application(["content-store"])]) == ["content-store-1"])
        #expect(try names([.all]).count == sampleInventory.hosts.count)
    }

    @Test func unionIsDeduplicatedInCommandLineOrder() throws {
        let selected = try names([.nodeClass(["backend"]), .puppetClass(["gor"]), .nodeClass(["cache", "backend"])])
        #expect(selected == ["backend-1", "backend-10", "cache-1", "cache-2", "content-store-1"])
    }

    @Test func explicitHosts() throws {
        let selection = try sampleInventory.select([.hosts(["cache-2", "10.0.0.1", "CACHE-2", "ops@backend-1:2222"])])
        #expect(selection.hosts.map(\.name) == ["cache-2", "cache-1", "backend-1"])
        #expect(selection.warnings == ["host 'CACHE-2' given more than once with -H; using it once"])
        #expect(selection.hosts[2].user == "ops" && selection.hosts[2].port == 2222)
        let adHoc = try sampleInventory.select([.hosts(["monitoring-1.management", "192.0.2.7"])])
        #expect(adHoc.hosts.map(\.name) == ["monitoring-1.management", "192.0.2.7"])
        #expect(adHoc.hosts.allSatisfy { $0.isAdHoc })
        #expect(adHoc.warnings.count == 2)
    }

    @Test func unknownShortHostNamesAreErrorsWithSuggestions() throws {
        let error = try #require(selectionError([.hosts(["cach-1"])]))
        guard case .unknownHost("cach-1", "production", let suggestions) = error.problem else {
            Issue.record("\(error)")
            return
        }
        #expect(suggestions.first == "-H cache-1")
        #expect(error.exitCode == .usage)
        let invalid = try #require(selectionError([.hosts(["bad host"])]))
        guard case .invalidHost = invalid.problem else {
            Issue.record("\(invalid)")
            return
        }
    }

    @Test func noMatchSuggestsNearNamesOfEveryKind() throws {
        let typo = try #require(selectionError([.puppetClass(["gorr"])]))
        guard case .noMatch("gorr", "production", let suggestions) = typo.problem else {
            Issue.record("\(typo)")
            return
        }
        #expect(suggestions.first == "puppet_class:gor")
        #expect(typo.exitCode == .noHostsMatched)
        #expect(
            typo.description.hasPrefix(
                "puppet_class:gorr: no host in production matches 'gorr' (did you mean 'puppet_class:gor'"))

        let wrongKind = try #require(selectionError([.nodeClass(["gor"])]))
        guard case .noMatch(_, _, let kinds) = wrongKind.problem else {
            Issue.record("\(wrongKind)")
            return
        }
        #expect(kinds.first == "puppet_class:gor")

        let substring = try #require(selectionError([.application(["publish"])]))
        guard case .noMatch(_, _, let apps) = substring.problem else {
            Issue.record("\(substring)")
            return
        }
        #expect(apps.contains("application:publisher"))

        let nothingNear = try #require(selectionError([.nodeClass(["zzzzzzzz"])]))
        guard case .noMatch(_, _, let none) = nothingNear.problem else {
            Issue.record("\(nothingNear)")
            return
        }
        #expect(none.isEmpty)
        // One unmatched value fails the whole selection, even if others matched.
        #expect(selectionError([.nodeClass(["cache", "cahce"])]) != nil)
        #expect(Inventory(name: "empty").selectError([.all]) != nil)
    }

    @Test func exclusions() throws {
        #expect(try names([.puppetClass(["gor"])], excluding: ["cache-2"]) == ["cache-1", "content-store-1"])
        let typo = try #require(selectionError([.puppetClass(["gor"])], excluding: ["cach-2"]))
        guard case .unknownExclusion("cach-2", let suggestions) = typo.problem else {
            Issue.record("\(typo)")
            return
        }
        #expect(suggestions.first == "cache-2")
        let all = try #require(selectionError([.nodeClass(["cache"])], excluding: ["cache-1", "cache-2"]))
        #expect(all.problem == .everythingExcluded)
        #expect(all.exitCode == .noHostsMatched)
    }
}

extension Inventory {
    func selectError(_ selectors: [Selector]) -> SelectionError? {
        do {
            _ = try select(selectors)
            return nil
        } catch { return error }
    }
}

@Suite("Command plans and helper tasks")
struct PlanTests {
    func plan(_ words: [String], hosts: [String] = []) throws -> CommandPlan {
        try CommandPlan.make(
            words: try FabricCommandLine.parse(words), inventory: sampleInventory, explicitHosts: hosts)
    }

    func planError(_ words: [String], hosts: [String] = []) -> SelectionError? {
        do {
            _ = try plan(words, hosts: hosts)
            return nil
        } catch let error as SelectionError { return error } catch {
            return nil
        }
    }

    @Test func runbookPlan() throws {
        let plan = try plan([
            "puppet_class:gor", "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress",
            "app.start:goreplay",
        ])
        #expect(plan.steps.map(\.task.name) == ["sdo", "app.start"])
        #expect(plan.steps.allSatisfy { $0.hosts.map(\.name) == ["cache-1", "cache-2", "content-store-1"] })
        #expect(plan.allHosts.count == 3)
    }

    @Test func selectorsAccumulateLikeFabric() throws {
        let plan = try plan(["class:cache", "uptime", "class:bouncer", "uptime"], hosts: ["backend-1"])
        #expect(plan.steps[0].hosts.map(\.name) == ["backend-1", "cache-1", "cache-2"])
        #expect(plan.steps[1].hosts.map(\.name) == ["backend-1", "cache-1", "cache-2", "bouncer-1"])
        #expect(plan.allHosts.map(\.name) == ["backend-1", "cache-1", "cache-2", "bouncer-1"])
    }

    @Test func planMistakes() throws {
        #expect(planError(["class:cache"])?.problem == .noTasks)
        #expect(planError(["uptime", "class:cache"])?.problem == .taskWithoutHosts(task: "uptime"))
        #expect(planError(["class:cache", "uptime", "all"])?.problem == .selectorAfterLastTask)
        #expect(planError(["class:cahce", "uptime"])?.exitCode == .noHostsMatched)
        // `classes` needs no hosts.
        #expect(try plan(["classes"]).steps.map(\.hosts) == [[]])
        #expect(try plan(["uptime"], hosts: ["cache-1"]).steps[0].hosts.map(\.name) == ["cache-1"])
    }

    @Test func hostsAndClassesHelpers() throws {
        let sorted = Inventory.sortedForListing(try sampleInventory.select([.all]).hosts).map(\.name)
        #expect(
            sorted == [
                "backend-1", "backend-10", "bouncer-1", "cache-1", "cache-2", "content-store-1",
                "frontend_app-1",
            ])
        let reversed = Inventory.sortedForListing([FleetHost(name: "cache-10"), FleetHost(name: "cache-2")]).map(\.name)
        #expect(reversed == ["cache-2", "cache-10"])
        let summary = sampleInventory.classSummary()
        #expect(summary.nodeClasses.first { $0.name == "cache" }?.hostCount == 2)
        #expect(summary.nodeClasses.map(\.name) == summary.nodeClasses.map(\.name).sorted())
        #expect(summary.puppetClasses.first { $0.name == "gor" }?.hostCount == 3) // "Gor" counts as "gor"
        #expect(summary.puppetClasses.first { $0.name == "govuk::node::s_backend" }?.hostCount == 2)
    }
}

@Suite("Confirmation")
struct ConfirmationTests {
    @Test func productionAsksOrRefuses() throws {
        var production = sampleInventory
        production.confirmChanges = true
        let plan = try CommandPlan.make(
            words: try FabricCommandLine.parse(["puppet_class:gor", "app.start:goreplay"]), inventory: production)
        let asked = ConfirmationPolicy.decide(
            inventory: production, plan: plan, changesHosts: true,
            assumeYes: false, canPrompt: true)
        #expect(
            asked
                == .ask(
                    prompt: "About to run app.start:goreplay on 3 production hosts"
                        + " (cache-1, cache-2, content-store-1). Type 'yes' to continue: "))
        guard
            case .refuse = ConfirmationPolicy.decide(
                inventory: production, plan: plan, changesHosts: true,
                assumeYes: false, canPrompt: false)
        else {
            Issue.record("expected a refusal without a terminal")
            return
        }
        #expect(
            ConfirmationPolicy.decide(
                inventory: production, plan: plan, changesHosts: true,
                assumeYes: true, canPrompt: false) == .proceed)
        #expect(
            ConfirmationPolicy.decide(
                inventory: production, plan: plan, changesHosts: false,
                assumeYes: false, canPrompt: false) == .proceed)
        #expect(
            ConfirmationPolicy.decide(
                inventory: sampleInventory, plan: plan, changesHosts: true,
                assumeYes: false, canPrompt: false) == .proceed)
    }
}
