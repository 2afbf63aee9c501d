import Testing

@testable import Fleet

func task(_ word: String) throws -> TaskInvocation {
    guard case .task(let invocation) = try FabricCommandLine.parseWord(word) else {
        throw CommandLineError(index: 0, word: word, problem: .emptyTaskName)
    }
    return invocation
}

func parseProblem(_ word: String) -> CommandLineError.Problem? {
    do {
        _ = try FabricCommandLine.parseWord(word)
        return nil
    } catch {
        return error
    }
}

@Suite("Fabric command-line grammar")
struct CommandLineTests {
    @Test func runbookLine() throws {
        // `govuk-fab production puppet_class:gor sdo:'rm /etc/…' app.start:goreplay` after shell quoting.
        let argv = [
            "production", "puppet_class:gor", "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress",
            "app.start:goreplay",
        ]
        let words = try FabricCommandLine.parse(Array(argv.dropFirst()), indexOffset: 1)
        #expect(
            words == [
                .selector(.puppetClass(["gor"])),
                .task(
                    TaskInvocation(
                        name: "sdo", positional: ["rm /etc/govuk/env.d/FACTER_data_sync_in_progress"],
                        raw: "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress")),
                .task(TaskInvocation(name: "app.start", positional: ["goreplay"], raw: "app.start:goreplay")),
            ])
    }

    @Test func positionalAndKeywordArguments() throws {
        let setenv = try task("app.setenv:whitehall,GOVUK_X,a=b")
        #expect(setenv.name == "app.setenv")
        #expect(setenv.positional == ["whitehall", "GOVUK_X"])
        #expect(setenv.keywords == [TaskKeyword("a", "b")])
        let downtime = try task("nagios.schedule_downtime:cache-1,minutes=30,reason=a=b,minutes=40")
        #expect(downtime.positional == ["cache-1"])
        #expect(
            downtime.keywords == [
                TaskKeyword("minutes", "30"), TaskKeyword("reason", "a=b"),
                TaskKeyword("minutes", "40"),
            ])
        #expect(downtime.keyword("minutes") == "40")
        #expect(downtime.keyword("absent") == nil)
    }

    @Test func equalsOnlySplitsAfterAnIdentifier() throws {
        let invocation = try task("x:1=2,a-b=c,=v,_k9=,a b=c")
        #expect(invocation.positional == ["1=2", "a-b=c", "=v", "a b=c"])
        #expect(invocation.keywords == [TaskKeyword("_k9", "")])
    }

    @Test func escapes() throws {
        let invocation = try task(#"x:a\,b,c\=d,e\\,f\g,k=v\,w"#)
        #expect(invocation.positional == ["a,b", "c=d", #"e\"#, #"f\g"#])
        #expect(invocation.keywords == [TaskKeyword("k", "v,w")])
        // An escaped "=" never starts a keyword value.
        let escapedEquals = try task(#"x:key\=value"#)
        #expect(escapedEquals.positional == ["key=value"])
        #expect(escapedEquals.keywords.isEmpty)
    }

    @Test func emptyArgumentsAreKeptLikeFabric() throws {
        #expect(try task("x:a,,b,").positional == ["a", "", "b", ""])
        #expect(try task("app.start:").positional.isEmpty)
        #expect(try task("uptime").positional.isEmpty)
        #expect(try task("uptime").raw == "uptime")
    }

    @Test func freeFormCommandsKeepCommasAndColons() throws {
        let invocation = try task("do:echo a,b; grep -c x=1 /etc/hosts:2")
        #expect(invocation.positional == ["echo a,b; grep -c x=1 /etc/hosts:2"])
        #expect(invocation.keywords.isEmpty)
        #expect(try task(#"sdo:printf 'a\,b\n'"#).positional == [#"printf 'a,b\n'"#])
        #expect(try task(#"sdo:echo a\\"#).positional == [#"echo a\\"#])
        // Other tasks can be declared free-form.
        let custom = try FabricCommandLine.parseWord(
            "puppet.disable:fixing cache, back soon",
            freeFormTasks: ["puppet.disable"])
        #expect(
            custom
                == .task(
                    TaskInvocation(
                        name: "puppet.disable", positional: ["fixing cache, back soon"],
                        raw: "puppet.disable:fixing cache, back soon")))
    }

    @Test func selectors() throws {
        let words = try FabricCommandLine.parse([
            "puppet_class:gor,govuk::node::s_cache", "class:cache,bouncer", "node_type:frontend",
            "application:content-store", "all", "all:",
        ])
        #expect(
            words == [
                .selector(.puppetClass(["gor", "govuk::node::s_cache"])), .selector(.nodeClass(["cache", "bouncer"])),
                .selector(.nodeType(["frontend"])), .selector(.application(["content-store"])),
                .selector(.all), .selector(.all),
            ])
        #expect(Selector.puppetClass(["gor", "x"]).description == "puppet_class:gor,x")
        #expect(
            Selector.explicitHosts(["cache-1,cache-2", " backend-1 ", ""])
                == .hosts(["cache-1", "cache-2", "backend-1"]))
    }

    @Test func errorsNameTheWordAndTheProblem() throws {
        #expect(parseProblem(":x") == .emptyTaskName)
        #expect(parseProblem("x:a\\") == .trailingBackslash)
        #expect(parseProblem("puppet_class") == .selectorNeedsValue("puppet_class"))
        #expect(parseProblem("class:") == .selectorNeedsValue("class"))
        #expect(parseProblem("class:cache,") == .emptySelectorValue("class"))
        #expect(parseProblem("all:x") == .selectorTakesNoValue("all"))
        #expect(parseProblem("sdo:") == nil) // `sdo` with no argument is a task without arguments
        #expect(parseProblem("sdo:   ") == .emptyCommand(task: "sdo"))
        #expect(parseProblem("-x") == .invalidTaskName("-x"))
        #expect(parseProblem("app.") == .invalidTaskName("app."))
        #expect(parseProblem("rm -rf:x") == .invalidTaskName("rm -rf"))

        let error = try #require(throws: CommandLineError.self) {
            try FabricCommandLine.parse(["puppet_class:gor", "sdo:ls", "x:a\\"], indexOffset: 1)
        }
        #expect(error.index == 3)
        #expect(error.word == "x:a\\")
        #expect(error.description == #"word 4 'x:a\': trailing backslash escapes nothing (write \\ for a backslash)"#)
    }
}
