import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;

/** Connect with pgjdbc and print OK USER SSL or ERROR message. */
public class Probe {
    public static void main(String[] args) {
        try (Connection c = DriverManager.getConnection(args[0])) {
            ResultSet r = c.createStatement().executeQuery(
                "select current_user, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)");
            r.next();
            System.out.println("OK " + r.getString(1) + " " + r.getBoolean(2));
        } catch (Exception e) {
            StringBuilder text = new StringBuilder("ERROR");
            for (Throwable t = e; t != null; t = t.getCause()) {
                text.append(" | ").append(t.getClass().getName()).append(": ").append(t.getMessage());
            }
            System.out.println(text);
        }
    }
}
