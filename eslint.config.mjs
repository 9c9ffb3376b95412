import nx from "@nx/eslint-plugin";

export default [
    ...nx.configs["flat/base"],
    ...nx.configs["flat/typescript"],
    ...nx.configs["flat/javascript"],
    {
        ignores: [
            "**/dist",
            "**/out-tsc"
        ]
    },
    {
        files: [
            "**/*.ts",
            "**/*.tsx",
            "**/*.js",
            "**/*.jsx"
        ],
        rules: {
            "@nx/enforce-module-boundaries": [
                "error",
                {
                    enforceBuildableLibDependency: true,
                    allow: [
                        "^.*/eslint(\\.base)?\\.config\\.[cm]?[jt]s$",
                        // The one webpack configuration the Node apps share (tools/webpack).
                        "^.*/tools/webpack/node-app\\.config(\\.js)?$"
                    ],
                    depConstraints: [
                        // The SPA sees only shared contracts: never Prisma, pkcs11 or server code.
                        { sourceTag: "scope:spa", onlyDependOnLibsWithTags: ["scope:shared", "scope:spa"] },
                        { sourceTag: "scope:shared", onlyDependOnLibsWithTags: ["scope:shared"] },
                        { sourceTag: "scope:server", onlyDependOnLibsWithTags: ["scope:server", "scope:shared"] },
                        { sourceTag: "scope:tool", onlyDependOnLibsWithTags: ["scope:tool", "scope:shared"] },
                        { sourceTag: "type:tool", onlyDependOnLibsWithTags: ["type:tool", "type:lib"] },
                        { sourceTag: "scope:test", onlyDependOnLibsWithTags: ["scope:test", "scope:server", "scope:shared", "scope:tool"] },
                        // Domain libraries never reach the HSM driver or the database directly;
                        // only apps (composition roots) wire them in.
                        { sourceTag: "type:lib", onlyDependOnLibsWithTags: ["type:lib"] },
                        { sourceTag: "type:data", onlyDependOnLibsWithTags: ["type:lib"] },
                        { sourceTag: "type:hsm", onlyDependOnLibsWithTags: ["type:lib"] },
                        // The keyclient (BFF) never reaches the Keyserver's tables or its HSM: it has its own session
                        // schema and role (docs/adr/0018-keyclient-off-the-keyserver-tables.md).
                        { sourceTag: "scope:bff", notDependOnLibsWithTags: ["type:data", "type:hsm"] }
                    ]
                }
            ]
        }
    },
    {
        files: [
            "**/*.ts",
            "**/*.tsx",
            "**/*.cts",
            "**/*.mts",
            "**/*.js",
            "**/*.jsx",
            "**/*.cjs",
            "**/*.mjs"
        ],
        // Override or add rules here
        rules: {}
    }
];
