package greeter;

/** A dependency shipped as lib/greeter.jar. */
public final class Greeter {
    private Greeter() {}

    public static String greet(String name) {
        return "Greetings, " + name + ", from a jar in lib/";
    }
}
