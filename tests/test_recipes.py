
import pytest

from serpentlib.build import styles
from serpentlib.errors import CycleError, RecipeError
from serpentlib.build.plan import build_order
from serpentlib.build.profile import load_profile
from serpentlib.build.recipes import STYLES, BuildSpec, load_recipe, load_recipes
from serpentlib.build.seed import ensure

from .conftest import FIXTURES, ROOT

BAD = FIXTURES / "recipes"


@pytest.mark.parametrize("fixture, fragments", [
    ("bad-unknown-key", ["dependz", "unknown key", "did you mean 'depends'"]),
    ("bad-missing-sha256", ["sources[0].sha256", "missing", "sha256sum"]),
    ("bad-sha256", ["sources[0].sha256", "'abc123' is not a sha256", "64 lowercase hex"]),
    ("bad-version", ["version", "'1.0 beta' is malformed"]),
    ("bad-missing-patch", ["patches", "0001-missing.patch does not exist"]),
    ("bad-patch-headers", ["0001-no-origin.patch lacks the header(s) Origin:, Upstream-Status:"]),
    ("bad-style", ["build.style", "unknown style 'autotool'", "did you mean 'autotools'"]),
    ("bad-stage-key", ["stage1.confgure", "did you mean 'configure'"]),
    ("bad-stage-patch", ["patches", "0002-only-in-stage3.patch does not exist"]),
    ("bad-name-folder", ["'hullo' differs from its folder 'hello'"]),
    ("bad-yaml", ["not valid YAML"]),
    ("bad-license", ["license", "'MIT AND Foo-Bar'", "Foo-Bar is not on the SPDX license list"]),
    ("bad-license-case", ["license", "'GPL-2.0+'", "write it as 'GPL-2.0-or-later'"]),
])
def test_bad_recipe_is_rejected_with_file_key_and_fix(fixture, fragments):
    path = next((BAD / fixture).glob("*/recipe.yaml"))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert "hint:" in message


def test_cycle_is_named():
    recipes = load_recipes(BAD / "bad-cycle")
    with pytest.raises(CycleError, match=r"a -> b -> c -> a"):
        build_order({n: r.depends for n, r in recipes.items()})


def test_unknown_recipe_name_suggests():
    with pytest.raises(RecipeError, match="did you mean 'musl'"):
        load_recipes(ROOT / "recipes", ["mussl"])


def test_build_order_puts_dependencies_first_and_is_stable():
    deps = {"musl": ["linux-headers"], "linux-headers": [], "compiler-rt": ["musl"],
            "llvm-runtimes": ["musl", "compiler-rt"]}
    assert build_order(deps, ["llvm-runtimes"]) == ["linux-headers", "musl", "compiler-rt", "llvm-runtimes"]
    assert build_order(deps) == ["linux-headers", "musl", "compiler-rt", "llvm-runtimes"]
    with pytest.raises(RecipeError, match="no recipe 'zlib' .needed by musl"):
        build_order({"musl": ["zlib"]})


def test_project_recipes_are_valid():
    recipes = load_recipes(ROOT / "recipes")
    assert {"linux-headers", "musl", "compiler-rt", "llvm-runtimes"} <= set(recipes)
    for recipe in recipes.values():
        assert (recipe.sources or recipe.source_dir) and all(len(s.sha256) == 64 for s in recipe.sources)
        build_order({n: [d for d in r.depends if d in recipes] for n, r in recipes.items()})


def test_stage_overrides_merge_env_over_common_build():
    musl = load_recipe(ROOT / "recipes" / "musl" / "recipe.yaml")
    common, stage1 = musl.build_for("stage4"), musl.build_for("stage1")
    assert common.env == {} and stage1.env["CC"] == "clang"
    assert stage1.configure == common.configure


def test_the_kernel_builds_on_the_host_only_where_the_final_compiler_is_tcc(tmp_path):
    """Linux in the chroot where stage 3's compiler is clang (full), on the host where it is tcc
    (mini); musl's intermediate build is on the host for both; anything else is a clear error."""
    linux = load_recipe(ROOT / "recipes" / "linux" / "recipe.yaml").build_for("stage3")
    assert linux.built_on_host("tcc") and not linux.built_on_host("clang")
    musl = load_recipe(ROOT / "recipes" / "musl" / "recipe.yaml").build_for("stage3")
    assert musl.built_on_host("tcc") and musl.built_on_host("clang")
    bad = tmp_path / "hello"
    bad.mkdir()
    (bad / "recipe.yaml").write_text("name: hello\nversion: 1\nsummary: s\nlicense: MIT\nsources: []\n"
                                     "source_dir: src\nstage3: {on_host: yes-please}\n")
    (bad / "src").mkdir()
    with pytest.raises(RecipeError, match="stage3.on_host"):
        load_recipe(bad / "recipe.yaml").build_for("stage3")


def test_styles_table_matches_schema():
    assert set(STYLES) == set(styles.STYLES)


def test_style_quotes_arguments_but_expands_variables():
    spec = load_recipe(ROOT / "recipes" / "musl" / "recipe.yaml").build_for("stage1")
    cmds = styles.commands(spec)
    assert cmds["configure"].startswith('"$SRC"/configure --prefix="$PREFIX" "--target=$TARGET"')
    assert styles.word('a "b" `c` $D') == '"a \\"b\\" \\`c\\` $D"'


def test_cmake_links_take_the_stage_ldflags_after_the_recipe_s_own(tmp_path, root_required):
    """Stage 3's tuning LDFLAGS (relro, now) must reach the LLVM runtimes, whose recipe sets its
    own linker flags: the Release flags CMake adds after them carry LDFLAGS; the seed's cmake,
    run with the style's configure line, says so."""
    spec = load_recipe(ROOT / "recipes" / "llvm-runtimes" / "recipe.yaml").build_for("stage3")
    configure = styles.commands(spec)["configure"]
    assert '-DCMAKE_SHARED_LINKER_FLAGS_RELEASE="$LDFLAGS"' in configure
    assert '-DCMAKE_EXE_LINKER_FLAGS_RELEASE="$LDFLAGS"' in configure
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(p NONE)\n"
                                        "message(STATUS \"flags: ${CMAKE_SHARED_LINKER_FLAGS_RELEASE}\")\n")
    seed = ensure(load_profile("mini").common["seed"])
    script = styles.cmake(BuildSpec(style="cmake"))["configure"].replace("-G Ninja", '-G "Unix Makefiles"')
    rec = seed.sandbox(writable=[tmp_path]).run(script, cwd=tmp_path, log=tmp_path / "log",
                                                env={"SRC": str(src), "PREFIX": "/usr",
                                                     "LDFLAGS": "-Wl,-z,relro -Wl,-z,now"})
    said = (tmp_path / "log").read_text()
    assert rec.exit_code == 0 and "flags: -Wl,-z,relro -Wl,-z,now" in said, said


def _own_sources_recipe(tmp_path, source_dir, sources="[]"):
    folder = tmp_path / "own"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "own.c").write_text("int main(void) { return 0; }\n")
    (folder / "recipe.yaml").write_text(f"name: own\nversion: 0.1\nsummary: s\nlicense: MIT\n"
                                        f"source_dir: {source_dir}\nsources: {sources}\n")
    return folder / "recipe.yaml"


def test_a_recipe_with_its_own_sources(tmp_path):
    from serpentlib.build.cache import recipe_inputs
    recipe = load_recipe(_own_sources_recipe(tmp_path, "src"))
    assert recipe.source_dir == tmp_path / "own" / "src" and recipe.sources == () and recipe.release == 1
    before = recipe_inputs(recipe, "stage3")["source_dir"]
    (recipe.source_dir / "own.c").write_text("int main(void) { return 1; }\n")
    assert recipe_inputs(recipe, "stage3")["source_dir"] != before, "a changed source must change the build key"


@pytest.mark.parametrize("source_dir, sources, fragment", [
    ("../elsewhere", "[]", "is not a folder inside the recipe's"),
    ("nosuch", "[]", "is not a folder inside the recipe's"),
    ("src", "[{url: 'https://example.org/x.tar.gz', sha256: '" + "a" * 64 + "'}]", "given along with source_dir"),
])
def test_bad_source_dir_is_rejected(tmp_path, source_dir, sources, fragment):
    with pytest.raises(RecipeError, match=fragment):
        load_recipe(_own_sources_recipe(tmp_path, source_dir, sources))
