import Foundation
import Testing

@testable import Fleet

/// Fabric 1's answer for one task word: `(name, args, kwargs, hosts, roles, exclude_hosts)`, the
/// tuple `fabric.main.parse_arguments` returns (fabric 1.14.1 `tests/test_main.py`). Every expected
/// answer here was also checked live against fab-classic 1.21.0's `parse_arguments`.
struct FabricAnswer: Equatable, CustomStringConvertible {
    var name: String
    var args: [String]
    var kwargs: [String: String]
    var hosts: [String]
    var roles: [String]
    var excludeHosts: [String]

    init(
        _ name: String, _ args: [String], _ kwargs: [String: String], _ hosts: [String], _ roles: [String],
        _ excludeHosts: [String]
    ) {
        (self.name, self.args, self.kwargs, self.hosts, self.roles, self.excludeHosts) =
            (name, args, kwargs, hosts, roles, excludeHosts)
    }

    /// govuk-fab's parse of `word`, in Fabric's shape (a repeated keyword: the last wins, as in a dict).
    init(parsing word: String) throws {
        guard case .task(let task) = try FabricCommandLine.parseWord(word) else {
            throw CommandLineError(index: 0, word: word, problem: .emptyTaskName)
        }
        self.init(
            task.name, task.positional,
            Dictionary(task.keywords.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
            task.hosts, task.roles, task.excludeHosts)
    }

    var description: String { "(\(name), \(args), \(kwargs), \(hosts), \(roles), \(excludeHosts))" }
}

@Suite("Fabric 1 parse compatibility")
struct FabricParseCompatTests {
    /// `test_argument_parsing`, every case, verbatim.
    static let testMainCases: [(String, FabricAnswer)] = [
        ("abc", FabricAnswer("abc", [], [:], [], [], [])),
        ("ab:c", FabricAnswer("ab", ["c"], [:], [], [], [])),
        ("a:b=c", FabricAnswer("a", [], ["b": "c"], [], [], [])),
        ("a:b=c,d", FabricAnswer("a", ["d"], ["b": "c"], [], [], [])),
        ("a:b=c,d=e", FabricAnswer("a", [], ["b": "c", "d": "e"], [], [], [])),
        ("abc:host=foo", FabricAnswer("abc", [], [:], ["foo"], [], [])),
        ("abc:hosts=foo", FabricAnswer("abc", [], [:], ["foo"], [], [])),
        ("abc:hosts=foo;bar", FabricAnswer("abc", [], [:], ["foo", "bar"], [], [])),
        ("abc:hosts=foo;bar,exclude_hosts=foo", FabricAnswer("abc", [], [:], ["foo", "bar"], [], ["foo"])),
        ("abc:hosts=foo;bar,exclude_hosts=foo;bar", FabricAnswer("abc", [], [:], ["foo", "bar"], [], ["foo", "bar"])),
        ("task:x=y,z=", FabricAnswer("task", [], ["x": "y", "z": ""], [], [], [])),
        ("task:foo,,x=y", FabricAnswer("task", ["foo", ""], ["x": "y"], [], [], [])),
        // test_escaped_task_kwarg_split
        (
            #"cmd:arg,escaped\,arg,nota\=kwarg,regular=kwarg,escaped=regular\=kwarg"#,
            FabricAnswer(
                "cmd", ["arg", "escaped,arg", "nota=kwarg"], ["regular": "kwarg", "escaped": "regular=kwarg"],
                [], [], [])
        ),
    ]

    /// Per-task examples in Fabric 1's docs (usage/fab.rst "Per-task arguments", usage/execution.rst),
    /// after the shell has removed the quotes; Fabric's answers worked out from `parse_arguments`.
    static let docsCases: [(String, FabricAnswer)] = [
        ("new_user:myusername", FabricAnswer("new_user", ["myusername"], [:], [], [], [])),
        ("new_user:username=myusername", FabricAnswer("new_user", [], ["username": "myusername"], [], [], [])),
        ("new_user:myusername,yes", FabricAnswer("new_user", ["myusername", "yes"], [:], [], [], [])),
        ("new_user:myusername,admin=yes", FabricAnswer("new_user", ["myusername"], ["admin": "yes"], [], [], [])),
        (
            #"new_user:myusername,admin=no,comment=Gary\, new developer (starts Monday)"#,
            FabricAnswer(
                "new_user", ["myusername"], ["admin": "no", "comment": "Gary, new developer (starts Monday)"],
                [], [], [])
        ),
        ("mytask:hosts=host1;host2", FabricAnswer("mytask", [], [:], ["host1", "host2"], [], [])),
        ("mytask:host=host1", FabricAnswer("mytask", [], [:], ["host1"], [], [])),
        (
            "mytask:roles=myrole,exclude_hosts=host2;host5",
            FabricAnswer("mytask", [], [:], [], ["myrole"], ["host2", "host5"])
        ),
        ("mytask:role=web", FabricAnswer("mytask", [], [:], [], ["web"], [])),
        ("mytask:roles=web;db", FabricAnswer("mytask", [], [:], [], ["web", "db"], [])),
        ("taskname:exclude_hosts=host2", FabricAnswer("taskname", [], [:], [], [], ["host2"])),
        // Fabric strips each name; a later host/hosts replaces an earlier one.
        ("t:hosts= a ; b ", FabricAnswer("t", [], [:], ["a", "b"], [], [])),
        ("t:host=a,hosts=b;c", FabricAnswer("t", [], [:], ["b", "c"], [], [])),
        ("t:hosts=b;c,host=a", FabricAnswer("t", [], [:], ["a"], [], [])),
        ("t:x,host=a,role=r,y=z", FabricAnswer("t", ["x"], ["y": "z"], ["a"], ["r"], [])),
    ]

    @Test(arguments: testMainCases)
    func fabricTestMain(word: String, expected: FabricAnswer) throws {
        #expect(try FabricAnswer(parsing: word) == expected)
    }

    @Test(arguments: docsCases)
    func fabricDocsExamples(word: String, expected: FabricAnswer) throws {
        #expect(try FabricAnswer(parsing: word) == expected)
    }

    /// `test_escaped_task_arg_split`: `_escape_split(',', r"foo,bar\,biz\,baz,what comes after baz?")`.
    @Test func escapedArgumentSplit() throws {
        let arguments = try FabricCommandLine.splitArguments(#"foo,bar\,biz\,baz,what comes after baz?"#).map(\.text)
        #expect(arguments == ["foo", "bar,biz,baz", "what comes after baz?"])
    }

    /// Where govuk-fab answers differently on purpose (docs/fabric-compat.md, "Task words").
    @Test func deliberateDifferences() throws {
        // Fabric crashed ("too many values to unpack") on a second "="; govuk-fab splits at the first.
        #expect(try FabricAnswer(parsing: "a:b=c=d") == FabricAnswer("a", [], ["b": "c=d"], [], [], []))
        // Fabric would try to connect to a host named ""; govuk-fab refuses the word.
        #expect(parseProblem("t:host=") == .emptyHostKeyword("host"))
        #expect(parseProblem("t:hosts=a;;b") == .emptyHostKeyword("hosts"))
        // Fabric passed `a-b` as a keyword and the Python call failed; here it is a positional value.
        #expect(try FabricAnswer(parsing: "t:a-b=c") == FabricAnswer("t", ["a-b=c"], [:], [], [], []))
        // do/sdo: Fabric split `do:echo a,b` into two arguments and crashed; govuk-fab runs `echo a,b`.
        #expect(try FabricAnswer(parsing: "do:echo a,b") == FabricAnswer("do", ["echo a,b"], [:], [], [], []))
    }

    /// Free-form tasks keep the rest of the word as the command but strip a trailing run of host
    /// keywords, so `sdo:'service nginx restart',hosts=cache-2` runs only on cache-2.
    @Test func freeFormTasksStripTrailingHostKeywords() throws {
        #expect(
            try FabricAnswer(parsing: "sdo:service nginx restart,hosts=cache-2")
                == FabricAnswer("sdo", ["service nginx restart"], [:], ["cache-2"], [], []))
        #expect(
            try FabricAnswer(parsing: "do:echo a,b,host=cache-1,exclude_hosts=cache-3;cache-4,roles=cache")
                == FabricAnswer("do", ["echo a,b"], [:], ["cache-1"], ["cache"], ["cache-3", "cache-4"]))
        // Only a trailing run counts: a host keyword earlier in the command is part of it.
        #expect(
            try FabricAnswer(parsing: "do:hosts=x,echo a")
                == FabricAnswer("do", ["hosts=x,echo a"], [:], [], [], []))
        // `\,` keeps a literal comma, so the text after it is command, not a keyword.
        #expect(
            try FabricAnswer(parsing: #"do:echo a\,hosts=b"#) == FabricAnswer("do", ["echo a,hosts=b"], [:], [], [], [])
        )
        // Other keywords are command text.
        #expect(
            try FabricAnswer(parsing: "do:grep -c x=1 /etc/hosts,host=a")
                == FabricAnswer("do", ["grep -c x=1 /etc/hosts"], [:], ["a"], [], []))
        // Nothing left to run.
        #expect(parseProblem("sdo:hosts=cache-2") == .emptyCommand(task: "sdo"))
    }
}

@Suite("Per-task hosts in the plan")
struct PerTaskHostsPlanTests {
    func plan(
        _ words: [String], hosts: [String] = [], roles: [String] = [], excluding: [String] = [],
        known: Set<String>? = nil
    ) throws -> [(String, [String])] {
        let parsed = try FabricCommandLine.parse(words)
        return try CommandPlan.make(
            words: parsed, inventory: sampleInventory, explicitHosts: hosts, roles: roles, excluding: excluding,
            knownTasks: known
        ).steps.map { ($0.task.name, $0.hosts.map(\.name)) }
    }

    func planError(_ words: [String], hosts: [String] = [], known: Set<String>? = nil) -> SelectionError? {
        do {
            _ = try plan(words, hosts: hosts, known: known)
            return nil
        } catch let error as SelectionError {
            return error
        } catch {
            return nil
        }
    }

    /// The issue's example: a per-task `hosts=` narrows that task; it never widens to -H.
    @Test func perTaskHostsNarrowOnlyThatTask() throws {
        let steps = try plan(["sdo:service nginx restart,hosts=cache-2", "do:uptime"], hosts: ["cache-1", "cache-2"])
        #expect(steps.map(\.0) == ["sdo", "do"])
        #expect(steps[0].1 == ["cache-2"])
        #expect(steps[1].1 == ["cache-1", "cache-2"])
    }

    /// Fabric: per-task hosts replace everything selected before; no selector is needed.
    @Test func perTaskHostsNeedNoSelector() throws {
        #expect(try plan(["app.status:nginx,hosts=cache-1;backend-1"]).map(\.1) == [["cache-1", "backend-1"]])
        #expect(try plan(["class:backend", "uptime:host=cache-2"]).map(\.1) == [["cache-2"]])
    }

    /// Roles are node classes (`class:`), unioned with the task's hosts.
    @Test func rolesAreNodeClasses() throws {
        #expect(try plan(["uptime:roles=backend"]).map(\.1) == [["backend-1", "backend-10"]])
        #expect(try plan(["uptime:hosts=cache-1,role=backend"]).map(\.1) == [["cache-1", "backend-1", "backend-10"]])
        #expect(try plan(["uptime"], roles: ["cache"]).map(\.1) == [["cache-1", "cache-2"]])
    }

    /// Fabric ignores a global -x for per-task hosts and a per-task exclude_hosts for -H hosts;
    /// govuk-fab always applies both, because an exclusion only ever narrows (docs/fabric-compat.md).
    @Test func exclusionsAlwaysNarrow() throws {
        #expect(try plan(["uptime:roles=backend,exclude_hosts=backend-10"]).map(\.1) == [["backend-1"]])
        #expect(try plan(["uptime:hosts=cache-1;cache-2"], excluding: ["cache-1"]).map(\.1) == [["cache-2"]])
        #expect(
            try plan(["uptime:exclude_hosts=cache-1", "do:ls"], hosts: ["cache-1", "cache-2"]).map(\.1)
                == [["cache-2"], ["cache-1", "cache-2"]])
        #expect(planError(["uptime:hosts=cache-1,exclude_hosts=cache-1"])?.problem == .everythingExcluded)
        let unknown = planError(["uptime:hosts=cache-1,exclude_hosts=cache-9"])
        #expect(unknown?.subject == "uptime:hosts=cache-1,exclude_hosts=cache-9")
        #expect(unknown?.problem == .unknownExclusion("cache-9", suggestions: ["cache-1", "cache-2"]))
    }

    @Test func perTaskHostsAreCheckedLikeDashH() {
        let error = planError(["uptime:hosts=cache-9"])
        guard case .unknownHost(let name, _, let suggestions) = error?.problem else {
            Issue.record("expected unknownHost, got \(String(describing: error))")
            return
        }
        #expect(name == "cache-9")
        #expect(suggestions.contains("-H cache-1"))
        #expect(planError(["help:x,hosts=cache-1"])?.problem == .hostKeywordsOnHostlessTask(task: "help"))
    }

    /// An unknown task is reported as such, before any selector-order problem.
    @Test func unknownTaskBeforeSelectorOrder() {
        let known: Set<String> = ["nagios.schedule_downtime_for", "uptime", "do"]
        let error = planError(["nagios.schedule_downtime:cache-1,20"], known: known)
        #expect(
            error?.problem == .unknownTask("nagios.schedule_downtime", suggestions: ["nagios.schedule_downtime_for"]))
        #expect(error?.exitCode == .usage)
        #expect(error?.description.contains("did you mean 'nagios.schedule_downtime_for'") == true)
        // A host or class name typed as a word is pointed at its selector.
        #expect(
            planError(["cache-1", "uptime"], known: known)?.problem
                == .unknownTask("cache-1", suggestions: ["-H cache-1"]))
        #expect(
            planError(["backend", "uptime"], known: known)?.problem
                == .unknownTask("backend", suggestions: ["class:backend"]))
        // Known tasks still get the selector-order error.
        #expect(planError(["uptime"], known: known)?.problem == .taskWithoutHosts(task: "uptime"))
    }
}

@Suite("fabric-scripts environments")
struct FabricScriptsEnvironmentTests {
    static let inventories = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("inventories").path

    /// Every environment task of fabric-scripts' fabfile loads, with the jumpbox it set as `env.gateway`.
    @Test(arguments: [
        ("test", "test", "jumpbox.pink.test.govuk.digital"),
        ("training", "training", "jumpbox.training.govuk.digital"),
        ("ci", "ci", "ci-jumpbox.integration.publishing.service.gov.uk"),
        ("aws_staging", "aws_staging", "jumpbox.blue.staging.govuk.digital"),
        ("staging_aws", "aws_staging", "jumpbox.blue.staging.govuk.digital"),
        ("aws_production", "aws_production", "jumpbox.blue.production.govuk.digital"),
        ("production_aws", "aws_production", "jumpbox.blue.production.govuk.digital"),
        ("integration", "integration", "jumpbox.blue.integration.govuk.digital"),
        ("production", "production", "jumpbox.publishing.service.gov.uk"),
        ("staging", "staging", "jumpbox.staging.publishing.service.gov.uk"),
    ])
    func environmentAndGateway(word: String, name: String, gateway: String) throws {
        let inventory = try InventoryLoader.load(environment: word, searchPaths: [Self.inventories])
        #expect(inventory.name == name)
        #expect(inventory.ssh.gateway.map(\.host) == [gateway])
    }

    @Test func productionOnAWSAsksBeforeChanges() throws {
        #expect(try InventoryLoader.load(environment: "production_aws", searchPaths: [Self.inventories]).confirmChanges)
        #expect(try !InventoryLoader.load(environment: "staging_aws", searchPaths: [Self.inventories]).confirmChanges)
    }
}
